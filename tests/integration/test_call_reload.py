"""test_call_reload.py — hot reload under load: sipp places calls continuously through relais
while the routing script is changed and reloaded 10 times (SIGHUP, and once `relaisctl
reload`); no call may fail and the new script's behaviour must show. A script with a syntax
error is refused (file:line logged) and the last good one keeps serving."""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402

SCRIPT = '''
function on_invite(call)
  relais.log("route-%s")
  local r = call:dial("sip:svc@127.0.0.1:%d", { timeout = 5 })
  if not r.answered then call:reject(r.code, r.reason) end
end
'''

CALLS = 300
RATE = 30


def test(checks):
    uas_port = h.free_port()
    http_port = h.free_port(udp=False)
    relais = h.Relais(name="call-reload", script=SCRIPT % ("v1", uas_port), config={
        "calls": {"authenticate": False, "unknown_sources": "allow"},
        "http": {"listen": "127.0.0.1:%d" % http_port},
        "log_level": "info",
    })
    script_path = os.path.join(relais.workdir, "dialplan.lua")
    relaisctl = os.environ.get("RELAISCTL_BIN") or os.path.join(os.path.dirname(h.relais_bin()), "relaisctl")
    with relais:
        work = h.make_tempdir("call-reload-sipp")
        h.require_tool("sipp")
        uas = h.popen(["timeout", "-s", "INT", "60", "sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port),
                       "-nostdin"], cwd=work, stdout=subprocess.DEVNULL,
                      stderr=subprocess.DEVNULL)
        time.sleep(0.3)
        uac_port = h.free_port()
        uac = h.popen(["timeout", "-s", "INT", "60", "sipp", "%s:%d" % (relais.host, relais.port), "-sn", "uac",
                       "-s", "svc", "-i", "127.0.0.1", "-p", str(uac_port), "-r", str(RATE), "-m", str(CALLS),
                       "-d", "400", "-l", "60", "-nostdin", "-trace_stat", "-trace_err", "-fd", "1"],
                      cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        reloads = []

        def reload_ten_times():
            for i in range(10):
                time.sleep(0.6)
                version = "v2" if i % 2 == 0 else "v1"
                if i == 9:
                    version = "v2"
                with open(script_path, "w") as f:
                    f.write(SCRIPT % (version, uas_port))
                mark = relais.log_mark()
                if i == 5:
                    out = subprocess.run([relaisctl, "--http", "127.0.0.1:%d" % http_port, "reload"],
                                         capture_output=True, text=True, timeout=10)
                    if out.returncode != 0:
                        h.fail("relaisctl reload exited %d: %s %s" % (out.returncode, out.stdout, out.stderr))
                else:
                    relais.signal(signal.SIGHUP)
                relais.wait_log("event=reload ", timeout=5, since=mark, what="reload %d" % (i + 1))
                reloads.append(version)

        def broken_script_refused():
            with open(script_path, "w") as f:
                f.write("function on_invite(call)\n  call:dial(\nend\n")
            mark = relais.log_mark()
            relais.signal(signal.SIGHUP)
            line = relais.wait_log("event=reload.failed", timeout=5, since=mark, what="broken reload")
            if not re.search(r"dialplan\.lua:\d+:", line):
                h.fail("reload.failed must name file:line, got: %s" % line)
            # Calls keep flowing on the last good script (v2).
            after = relais.log_mark()
            h.wait_until(lambda: "route-v2" in "".join(relais.log_since(after)), timeout=5,
                         what="a call routed by the last good script after the failed reload")

        def no_call_failed():
            out, err = uac.communicate(timeout=60)
            text = out.decode("utf-8", "replace")
            uas.send_signal(signal.SIGINT)
            m = re.findall(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", text)
            f = re.findall(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", text)
            ok, failed = (int(m[-1]) if m else -1), (int(f[-1]) if f else -1)
            h.log("sipp uac rc=%s successful=%d failed=%d" % (uac.returncode, ok, failed))
            if uac.returncode != 0 or ok != CALLS or failed != 0:
                h.fail("expected %d successful and 0 failed calls, got rc=%s ok=%d failed=%d\n%s" % (
                    CALLS, uac.returncode, ok, failed, err.decode("utf-8", "replace")[-2000:]))

        def new_behaviour_observed():
            log = relais.log_text()
            if log.count("event=reload ") < 10:
                h.fail("expected 10 successful reloads in the log, found %d" % log.count("event=reload "))
            last_reload = log.rfind("generation=11")
            if last_reload < 0:
                h.fail("the 10th reload should have created script generation 11")
            if "route-v2" not in log[last_reload:]:
                h.fail("no call was routed by the script loaded by the last reload")
            if "route-v1" not in log:
                h.fail("no call was routed by the first script")

        checks.run("10 reloads under load succeed (SIGHUP and relaisctl)", reload_ten_times)
        checks.run("a script with a syntax error is refused and the old one keeps serving", broken_script_refused)
        checks.run("no call failed while reloading", no_call_failed)
        checks.run("calls after the reloads run the new script", new_behaviour_observed)


if __name__ == "__main__":
    h.main(test)
