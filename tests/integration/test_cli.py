"""test_cli.py — the command line: --version, --help, and --check on good and broken configs
and scripts (file:line: message, non-zero exit)."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402


def run(args, cwd=None, timeout=15):
    argv = [h.relais_bin()] + args
    h.log("run: %s" % " ".join(argv))
    try:
        p = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        h.fail("%s did not exit within %d s" % (" ".join(argv), timeout))
    out = p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")
    h.log("exit %s, output:\n%s" % (p.returncode, out.strip()[-2000:]))
    return p.returncode, out


GOOD_SCRIPT = """-- a valid hook script
function on_register(req)
  req:annotate("site", "main")
end
"""

BAD_SCRIPT = """-- line 1
function on_register(req)
  req:annotate("site", "main")
  if req.user == then
    return
  end
end
"""  # syntax error on line 4

BAD_CONFIG = """-- line 1
return {
  domain = "it.example",
  sip = { listen = { "udp:127.0.0.1:5060" } ,
  users = { ["100"] = { password = "x" } }
  registrar = { min_expires = 60 },
}
"""  # missing '}' / ',' : error reported on line 6


def test(checks):
    tmp = h.make_tempdir("cli")

    def version():
        rc, out = run(["--version"])
        if rc != 0:
            h.fail("--version exited %s" % rc)
        if not re.search(r"\d+\.\d+", out):
            h.fail("--version prints no version number: %r" % out)

    def help_():
        rc, out = run(["--help"])
        if rc != 0:
            h.fail("--help exited %s" % rc)
        for word in ("--config", "--check", "--set"):
            if word not in out:
                h.fail("--help does not mention %s" % word)

    def check_example():
        # Both shipped deployments: their scripts load with the shipped Lua library
        # (relais.voicemail, relais.ivr) and --check runs their top level.
        for example in ("office", "ivr-campaign"):
            cfg = os.path.join(h.source_dir(), "examples", example, "relais.lua")
            if not os.path.exists(cfg):
                h.fail("example config missing: %s" % cfg)
            rc, out = run(["--check", cfg], cwd=tmp)
            if rc != 0:
                h.fail("--check on examples/%s exited %s:\n%s" % (example, rc, out))

    def write(name, text):
        path = os.path.join(tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def config_text(script):
        port = h.free_port()
        return ('return {\n  domain = "it.example",\n  sip = { listen = { "udp:127.0.0.1:%d" } },\n'
                '  auth = { secret = "s" },\n  store = { backend = "sqlite", path = "%s" },\n'
                '  users = { ["100"] = { password = "x" } },\n  script = "%s",\n}\n') % (
                    port, os.path.join(tmp, "cli.db"), script)

    def check_good_config():
        write("good.lua", GOOD_SCRIPT)
        cfg = write("good-relais.lua", config_text("good.lua"))
        rc, out = run(["--check", cfg], cwd=tmp)
        if rc != 0:
            h.fail("--check on a valid config + script exited %s:\n%s" % (rc, out))

    def check_config_syntax_error():
        cfg = write("broken-relais.lua", BAD_CONFIG)
        rc, out = run(["--check", cfg], cwd=tmp)
        if rc == 0:
            h.fail("--check on a config with a Lua syntax error exited 0")
        m = re.search(r"broken-relais\.lua:(\d+):", out)
        if not m:
            h.fail("--check does not print 'broken-relais.lua:LINE:' for a config syntax error:\n%s" % out)
        if m.group(1) not in ("5", "6"):
            h.fail("config syntax error reported at line %s, expected 6 (or 5):\n%s" % (m.group(1), out))

    def check_script_syntax_error():
        write("broken.lua", BAD_SCRIPT)
        cfg = write("script-relais.lua", config_text("broken.lua"))
        rc, out = run(["--check", cfg], cwd=tmp)
        if rc == 0:
            h.fail("--check on a script with a Lua syntax error exited 0")
        m = re.search(r"broken\.lua:(\d+):", out)
        if not m:
            h.fail("--check does not print 'broken.lua:LINE:' for a script syntax error:\n%s" % out)
        if m.group(1) != "4":
            h.fail("script syntax error reported at line %s, expected 4:\n%s" % (m.group(1), out))

    def check_missing_script():
        cfg = write("missing-relais.lua", config_text("does-not-exist.lua"))
        rc, out = run(["--check", cfg], cwd=tmp)
        if rc == 0:
            h.fail("--check with a missing script file exited 0:\n%s" % out)
        if "does-not-exist.lua" not in out:
            h.fail("--check does not name the missing script:\n%s" % out)

    def check_missing_config():
        rc, out = run(["--check", os.path.join(tmp, "nope.lua")], cwd=tmp)
        if rc == 0:
            h.fail("--check on a missing config file exited 0")

    def start_with_broken_config():
        cfg = os.path.join(tmp, "broken-relais.lua")
        rc, out = run(["--config", cfg], cwd=tmp, timeout=10)
        if rc == 0:
            h.fail("relais --config with a broken config exited 0")
        if not re.search(r"broken-relais\.lua:\d+:", out):
            h.fail("starting with a broken config does not print file:line:\n%s" % out)

    checks.run("--version exits 0", version)
    checks.run("--help exits 0", help_)
    checks.run("--check on examples/office and examples/ivr-campaign exits 0", check_example)
    checks.run("--check on a valid temp config + script exits 0", check_good_config)
    checks.run("--check on a config syntax error: file:line, non-zero", check_config_syntax_error)
    checks.run("--check on a script syntax error: file:line, non-zero", check_script_syntax_error)
    checks.run("--check with a missing script file fails", check_missing_script)
    checks.run("--check on a missing config file fails", check_missing_config)
    checks.run("--config with a broken config fails with file:line", start_with_broken_config)


if __name__ == "__main__":
    h.main(test)
