"""test_prompts.py — the prompts the build speaks into var/prompts: every name of the tables
scripts/prompts/{en,fr}.txt exists in both languages as an 8 kHz mono 16-bit WAV of a sensible
length, English and French differ, and make-prompts.sh is idempotent and fails clearly when a
tool is missing."""

import os
import subprocess
import sys
import wave

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness_core as h  # noqa: E402
from sip_uac import fail  # noqa: E402

LANGS = ("en", "fr")


def read_table(path):
    """name -> text, in table order."""
    names = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, _, text = line.partition("|")
            names[name] = text
    return names


def wav_facts(path):
    """(channels, sample width, rate, seconds, frames bytes) of a PCM WAV."""
    with wave.open(path, "rb") as w:
        frames = w.readframes(w.getnframes())
        return w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes() / w.getframerate(), frames


def test(checks):
    src = h.source_dir()
    prompts_dir = os.path.join(src, "scripts", "prompts")
    script = os.path.join(prompts_dir, "make-prompts.sh")
    built = os.path.join(src, "var", "prompts")
    tables = {lang: read_table(os.path.join(prompts_dir, lang + ".txt")) for lang in LANGS}

    def same_names_in_both_tables():
        en, fr = set(tables["en"]), set(tables["fr"])
        if en != fr:
            fail("names only in en.txt: %s; only in fr.txt: %s" % (sorted(en - fr), sorted(fr - en)))
        needed = [str(n) for n in range(100)] + """
            hundred hundreds thousand star pound minus
            welcome press for or to invalid timeout goodbye please_hold transferring try_again
            closed language_choice main_menu silence
            vm_unavailable vm_busy vm_enter_box vm_enter_pin vm_invalid_pin vm_you_have
            vm_new_messages vm_new_message vm_saved_messages vm_no_messages vm_message
            vm_first_message vm_next_message vm_last_message vm_main_menu vm_message_menu
            vm_deleted vm_saved vm_record_greeting vm_greeting_saved vm_enter_new_pin
            vm_pin_changed vm_message_saved vm_from vm_received
            company_welcome dept_menu sales support accounting hours_closed operator""".split()
        missing = [n for n in needed if n not in en]
        if missing:
            fail("tables lack prompts the Lua library plays: %s" % missing)

    def every_prompt_is_8k_mono_16bit():
        problems = []
        for lang in LANGS:
            for name in tables[lang]:
                path = os.path.join(built, lang, name + ".wav")
                if not os.path.isfile(path):
                    problems.append("%s: missing" % path)
                    continue
                try:
                    ch, width, rate, seconds, _ = wav_facts(path)
                except (wave.Error, EOFError) as e:
                    problems.append("%s: not a PCM WAV (%s)" % (path, e))
                    continue
                if (ch, width, rate) != (1, 2, 8000):
                    problems.append("%s: %d ch, %d bytes/sample, %d Hz" % (path, ch, width, rate))
                if name == "silence":
                    if abs(seconds - 1.0) > 0.01:
                        problems.append("%s: %.3f s, want 1 s" % (path, seconds))
                elif not 0.2 <= seconds <= 15.0:
                    problems.append("%s: %.3f s, outside 0.2..15 s" % (path, seconds))
        if problems:
            fail("%d bad prompt(s) (did the build run the `prompts` target?):\n  %s"
                 % (len(problems), "\n  ".join(problems[:20])))

    def silence_is_silent():
        for lang in LANGS:
            frames = wav_facts(os.path.join(built, lang, "silence.wav"))[4]
            if frames.strip(b"\0"):
                fail("%s/silence.wav has non-zero samples" % lang)

    def english_and_french_differ():
        same = []
        for name in tables["en"]:
            if name == "silence":
                continue
            en = wav_facts(os.path.join(built, "en", name + ".wav"))[4]
            fr = wav_facts(os.path.join(built, "fr", name + ".wav"))[4]
            if en == fr:
                same.append(name)
        if same:
            fail("English and French audio are identical for %s" % same)

    def rerun_speaks_nothing():
        out = h.make_tempdir("prompts")
        first = subprocess.run(["bash", script, out], capture_output=True, text=True, timeout=120)
        if first.returncode != 0:
            fail("make-prompts.sh exited %d: %s" % (first.returncode, first.stderr))
        probe = os.path.join(out, "fr", "goodbye.wav")
        before = os.stat(probe).st_mtime_ns
        again = subprocess.run(["bash", script, out], capture_output=True, text=True, timeout=30)
        if again.returncode != 0 or " 0 prompt(s) spoken" not in again.stdout:
            fail("second run was not a no-op: rc=%d out=%r err=%r" % (again.returncode, again.stdout, again.stderr))
        if os.stat(probe).st_mtime_ns != before:
            fail("second run rewrote %s" % probe)

    def missing_tool_is_reported():
        # A PATH with the shell utilities the script needs before its check, but no espeak-ng.
        bindir = h.make_tempdir("prompts-path")
        for tool in ("bash", "dirname", "basename"):
            os.symlink(h.require_tool(tool), os.path.join(bindir, tool))
        r = subprocess.run([os.path.join(bindir, "bash"), script, h.make_tempdir("prompts-none")],
                           capture_output=True, text=True, timeout=30, env={"PATH": bindir})
        if r.returncode == 0 or "espeak-ng not found" not in r.stderr:
            fail("without espeak-ng: rc=%d stderr=%r" % (r.returncode, r.stderr))

    checks.run("en.txt and fr.txt name the same prompts, all the library needs", same_names_in_both_tables)
    checks.run("every prompt exists in both languages as 8 kHz mono 16-bit PCM", every_prompt_is_8k_mono_16bit)
    checks.run("silence is one second of zero samples", silence_is_silent)
    checks.run("English and French prompts differ", english_and_french_differ)
    checks.run("a second run of make-prompts.sh speaks nothing", rerun_speaks_nothing)
    checks.run("make-prompts.sh names a missing espeak-ng", missing_tool_is_reported)


if __name__ == "__main__":
    h.main(test)
