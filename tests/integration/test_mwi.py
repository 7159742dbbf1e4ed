"""test_mwi.py — message waiting indication (RFC 3842 over RFC 6665): a phone SUBSCRIBEs to its
own mailbox with Digest and gets 200 + NOTIFY "Messages-Waiting: no"; the script's
relais.mwi.update (run from on_invite, triggered by a call) NOTIFYs "yes" with the counts, then
"no"; the same counts twice NOTIFY once; relais.mwi.counts reads them back; a refresh NOTIFYs
the current state; Expires: 0 ends with "terminated"; a NOTIFY refused with 481 drops the
subscription; the subscription expires on its own (20 s; mwi.min_expires = 10 here); an unknown package gets
489, someone else's mailbox 403, an unknown mailbox 404, a 17th subscription to one mailbox
503; a registered phone without subscription gets an out-of-dialog NOTIFY; relais stopping
ends live subscriptions with a final NOTIFY; the counts survive a restart (the key-value
store); relais exits cleanly (ASan: no report)."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relais_harness as h  # noqa: E402
from mwi_phone import BODY_TYPE, MwiPhone, summary_of, tag_of  # noqa: E402

CALLS = {"authenticate": False, "unknown_sources": "allow", "no_answer_timeout": 10}

# A call to "mwi-USER-NEW-OLD" sets the counts of USER's mailbox; "mwicounts-USER" logs them.
SCRIPT = r"""
-- test_mwi.py dialplan
function on_invite(call)
  local u = call.ruri.user
  local user, new, old = u:match("^mwi%-(%w+)%-(%d+)%-(%d+)$")
  if user then
    relais.mwi.update(user, tonumber(new), tonumber(old))
  end
  local who = u:match("^mwicounts%-(%w+)$")
  if who then
    local n, o = relais.mwi.counts(who)
    relais.log(string.format("mwi-counts %s %d/%d", who, n, o))
  end
  return call:reject(486, "Busy Here")
end
"""


def trigger(relais, service):
    """One call through sipp whose on_invite runs the MWI verb named by `service`."""
    uac = h.sipp_uac(relais, "call_uac_fail.xml", service, timeout=10)
    ru, _ = h.finish_call(uac)
    if ru.rc != 0:
        h.fail("trigger call %s failed:\n%s" % (service, h.call_report(ru)))


def check_notify(n, what, state, waiting, voice, mailbox, call_id=None):
    if n is None:
        h.fail("%s: no NOTIFY arrived" % what)
    raw = n.raw.decode("utf-8", "replace")
    if call_id and n.get("call-id") != call_id:
        h.fail("%s: NOTIFY outside the subscription's dialog:\n%s" % (what, raw))
    if (n.get("event") or "").split(";")[0].strip() != "message-summary":
        h.fail("%s: Event %r, expected message-summary:\n%s" % (what, n.get("event"), raw))
    sub_state = n.get("subscription-state") or ""
    if not sub_state.startswith(state):
        h.fail("%s: Subscription-State %r, expected %s...:\n%s" % (what, sub_state, state, raw))
    if waiting is None:
        return sub_state
    if (n.get("content-type") or "").lower() != BODY_TYPE:
        h.fail("%s: Content-Type %r:\n%s" % (what, n.get("content-type"), raw))
    body = summary_of(n)
    expected = {"messages-waiting": waiting, "message-account": "sip:%s@%s" % (mailbox, h.DOMAIN),
                "voice-message": voice}
    for k, v in expected.items():
        if body.get(k) != v:
            h.fail("%s: body %s = %r, expected %r:\n%s" % (what, k, body.get(k), v, raw))
    return sub_state


def expires_of(state):
    for part in state.split(";")[1:]:
        k, _, v = part.strip().partition("=")
        if k == "expires":
            return int(v)
    return None


def test(checks):
    h.require_tool("sipp")
    relais = h.Relais(name="mwi", config={"calls": CALLS, "mwi": {"min_expires": 10}}, script=SCRIPT)
    phones = []

    def phone(user):
        p = MwiPhone(relais, user, h.user_password(user))
        phones.append(p)
        return p

    with relais:
        # Started first: a 20 s subscription (config mwi.min_expires = 10); the other checks
        # run meanwhile and the last one collects its end.
        expiring = phone("104")
        expiry = {}

        def watch_expiry():
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and "final" not in expiry:
                n = expiring.wait_notify(timeout=1.0, call_id=expiring.dialog["call_id"])
                if n is not None and (n.get("subscription-state") or "").startswith("terminated"):
                    expiry["final"] = (n, time.monotonic())

        def start_expiring():
            r = expiring.subscribe(expires=20)
            h.expect_status(r, 200, "SUBSCRIBE 104 Expires: 20")
            if r.get("expires") != "20":
                h.fail("granted Expires %r, expected 20" % r.get("expires"))
            check_notify(expiring.wait_notify(call_id=expiring.dialog["call_id"]), "first NOTIFY of 104",
                         "active", "no", "0/0", "104")
            expiry["started"] = time.monotonic()
            t = threading.Thread(target=watch_expiry, daemon=True)
            t.start()
            expiry["thread"] = t

        checks.run("a 20 s subscription starts (its expiry is checked last)", start_expiring)

        p101 = phone("101")
        state = {}

        def subscribe_own():
            p101.register()
            r = p101.subscribe()
            h.expect_status(r, 200, "SUBSCRIBE 101 to its own mailbox")
            if not p101.challenged:
                h.fail("the first SUBSCRIBE was not challenged with 407")
            if not _to_tag(r):
                h.fail("200 to SUBSCRIBE without a To tag: %s" % r.summary())
            if r.get("expires") != "3600":
                h.fail("200 to SUBSCRIBE: Expires %r, expected the default 3600" % r.get("expires"))
            if not r.contacts():
                h.fail("200 to SUBSCRIBE without Contact: %s" % r.summary())
            n = p101.wait_notify(call_id=p101.dialog["call_id"])
            s = check_notify(n, "first NOTIFY", "active", "no", "0/0", "101")
            e = expires_of(s)
            if e is None or not 3590 <= e <= 3600:
                h.fail("first NOTIFY: Subscription-State %r, expected expires near 3600" % s)
            if _from_tag(n) != _to_tag(r):
                h.fail("NOTIFY From tag %r is not the 200's To tag %r" % (_from_tag(n), _to_tag(r)))
            state["dialog"] = p101.dialog["call_id"]

        def update_notifies():
            trigger(relais, "mwi-101-2-1")
            n = p101.wait_notify(call_id=state["dialog"])
            check_notify(n, "NOTIFY after update(101, 2, 1)", "active", "yes", "2/1", "101")

        def same_counts_once():
            trigger(relais, "mwi-101-2-1")
            p101.expect_no_notify(1.5, call_id=state["dialog"], what="the same counts again")

        def counts_read_back():
            mark = relais.log_mark()
            trigger(relais, "mwicounts-101")
            line = h.wait_until(lambda: [l for l in h.script_logs(relais, mark) if l.startswith("mwi-counts")],
                                timeout=5, what="mwi-counts log")[0]
            if line != "mwi-counts 101 2/1":
                h.fail("relais.mwi.counts('101') logged %r, expected 'mwi-counts 101 2/1'" % line)

        def refresh_notifies():
            r = p101.refresh(600)
            h.expect_status(r, 200, "refresh SUBSCRIBE Expires: 600")
            if r.get("expires") != "600":
                h.fail("refresh granted Expires %r, expected 600" % r.get("expires"))
            s = check_notify(p101.wait_notify(call_id=state["dialog"]), "NOTIFY after refresh", "active",
                             "yes", "2/1", "101")
            e = expires_of(s)
            if e is None or not 590 <= e <= 600:
                h.fail("NOTIFY after refresh: %r, expected expires near 600" % s)

        def update_off():
            trigger(relais, "mwi-101-0-0")
            check_notify(p101.wait_notify(call_id=state["dialog"]), "NOTIFY after update(101, 0, 0)", "active",
                         "no", "0/0", "101")

        def unsubscribe():
            r = p101.refresh(0)
            h.expect_status(r, 200, "SUBSCRIBE Expires: 0")
            s = check_notify(p101.wait_notify(call_id=state["dialog"]), "NOTIFY after Expires: 0",
                             "terminated", "no", "0/0", "101")
            if "reason=timeout" not in s:
                h.fail("final NOTIFY: %r, expected reason=timeout" % s)
            time.sleep(0.3)
            r = p101.refresh(600)
            h.expect_status(r, 481, "refresh of the ended subscription")
            # 101 is registered and has no subscription now: the next update reaches it out of
            # dialog, never in the ended one.
            trigger(relais, "mwi-101-1-0")
            n = p101.wait_notify(other_than=state["dialog"])
            check_notify(n, "unsolicited NOTIFY to 101", "active", "yes", "1/0", "101")
            p101.expect_no_notify(0.5, call_id=state["dialog"], what="ended dialog")

        checks.run("SUBSCRIBE with Digest to its own mailbox: 200 with To tag, Expires, Contact; "
                   "NOTIFY Messages-Waiting: no", subscribe_own)
        checks.run("relais.mwi.update(101, 2, 1) NOTIFYs yes with Voice-Message 2/1", update_notifies)
        checks.run("the same counts again send no NOTIFY", same_counts_once)
        checks.run("relais.mwi.counts returns the stored counts", counts_read_back)
        checks.run("an in-dialog refresh gets 200 and a NOTIFY of the current state", refresh_notifies)
        checks.run("relais.mwi.update(101, 0, 0) NOTIFYs no", update_off)
        checks.run("Expires: 0 ends with NOTIFY terminated;reason=timeout, the dialog is gone (481)",
                   unsubscribe)

        def bad_event():
            p = phone("105")
            r = p.subscribe(event="presence")
            h.expect_status(r, 489, "SUBSCRIBE Event: presence")
            if "message-summary" not in (r.get("allow-events") or ""):
                h.fail("489 without Allow-Events: message-summary: %s" % r.raw.decode("utf-8", "replace"))

        def other_mailbox():
            r = phone("101").subscribe(mailbox="102")
            h.expect_status(r, 403, "101 subscribing to 102's mailbox")

        def unknown_mailbox():
            r = phone("101").subscribe(mailbox="999")
            h.expect_status(r, 404, "SUBSCRIBE to mailbox 999 (no such user)")

        def allow_lists_subscribe():
            r = phone("101").request("FOO")
            h.expect_status(r, 405, "FOO")
            if "SUBSCRIBE" not in (r.get("allow") or ""):
                h.fail("405 Allow %r does not list SUBSCRIBE" % r.get("allow"))

        checks.run("an unknown event package gets 489 with Allow-Events", bad_event)
        checks.run("subscribing to someone else's mailbox gets 403", other_mailbox)
        checks.run("subscribing to a mailbox nobody owns gets 404", unknown_mailbox)
        checks.run("405 Allow lists SUBSCRIBE", allow_lists_subscribe)

        def unsolicited():
            p = phone("102")
            contact = p.register()
            trigger(relais, "mwi-102-3-0")
            n = p.wait_notify()
            check_notify(n, "unsolicited NOTIFY to 102", "active", "yes", "3/0", "102")
            if n.first_line.split()[1] != contact:
                h.fail("unsolicited NOTIFY Request-URI %r, expected the registered contact %r"
                       % (n.first_line.split()[1], contact))
            if _to_tag(n) is not None or not _from_tag(n):
                h.fail("unsolicited NOTIFY: expected a From tag and no To tag:\n%s" % n.raw.decode())
            if "sip:102@%s" % h.DOMAIN not in (n.get("to") or ""):
                h.fail("unsolicited NOTIFY To %r is not the AoR" % n.get("to"))

        checks.run("a registered phone without subscription gets an out-of-dialog NOTIFY", unsolicited)

        def refused_notify_drops():
            p = phone("103")
            h.expect_status(p.subscribe(), 200, "SUBSCRIBE 103")
            check_notify(p.wait_notify(call_id=p.dialog["call_id"]), "first NOTIFY of 103", "active", "no",
                         "0/0", "103")
            p.notify_status = 481
            mark = relais.log_mark()
            trigger(relais, "mwi-103-1-0")
            check_notify(p.wait_notify(call_id=p.dialog["call_id"]), "NOTIFY answered 481", "active", "yes",
                         "1/0", "103")
            relais.wait_log("event=mwi.ended", since=mark, timeout=5, what="subscription dropped after 481")
            p.notify_status = 200
            trigger(relais, "mwi-103-2-0")
            p.expect_no_notify(1.0, what="after the subscription was dropped")

        checks.run("a NOTIFY answered 481 drops the subscription", refused_notify_drops)

        def mailbox_limit():
            p = phone("106")
            for i in range(16):
                r = p.subscribe()
                h.expect_status(r, 200, "SUBSCRIBE %d of 106" % (i + 1))
                p.wait_notify(call_id=p.dialog["call_id"])
            r = p.subscribe()
            h.expect_status(r, 503, "17th subscription to one mailbox")

        checks.run("a 17th subscription to one mailbox gets 503", mailbox_limit)

        def expires_alone():
            t = expiry.get("thread")
            if t is None:
                h.fail("the 20 s subscription never started")
            t.join(timeout=max(1.0, expiry["started"] + 35 - time.monotonic()))
            if "final" not in expiry:
                h.fail("no NOTIFY terminated within 35 s of a 20 s subscription")
            n, at = expiry["final"]
            took = at - expiry["started"]
            s = check_notify(n, "NOTIFY at expiry", "terminated", "no", "0/0", "104")
            if "reason=timeout" not in s:
                h.fail("NOTIFY at expiry: %r, expected reason=timeout" % s)
            if not 18 <= took <= 30:
                h.fail("the 20 s subscription ended after %.1f s" % took)
            h.log("subscription expired after %.1f s" % took)

        checks.run("a subscription nobody refreshes ends with NOTIFY terminated;reason=timeout",
                   expires_alone)

        def stop_and_restart():
            last = phone("107")
            h.expect_status(last.subscribe(), 200, "SUBSCRIBE 107")
            last.wait_notify(call_id=last.dialog["call_id"])
            relais.restart()
            n = last.wait_notify(timeout=3, call_id=last.dialog["call_id"])
            s = check_notify(n, "NOTIFY at shutdown", "terminated", None, None, "107")
            if "reason=probation" not in s:
                h.fail("NOTIFY at shutdown: %r, expected reason=probation" % s)

        def counts_survive_restart():
            # 101 was left at 1/0 and 102 at 3/0 before the restart.
            for user, waiting, voice in (("101", "yes", "1/0"), ("102", "yes", "3/0"), ("105", "no", "0/0")):
                p = phone(user)
                h.expect_status(p.subscribe(), 200, "SUBSCRIBE %s after the restart" % user)
                check_notify(p.wait_notify(call_id=p.dialog["call_id"]), "first NOTIFY of %s after the restart"
                             % user, "active", waiting, voice, user)

        checks.run("relais stopping ends live subscriptions with NOTIFY terminated;reason=probation",
                   stop_and_restart)
        checks.run("the counts survive a restart (SUBSCRIBE afterwards gets them)", counts_survive_restart)
        if not relais.alive():
            h.fail("relais died during the MWI checks")

    def clean_exit():
        # `with` stopped relais and checked its exit code (a sanitizer report makes it non-zero).
        reports = [l for l in relais.log_lines() if "Sanitizer" in l or "runtime error" in l]
        if reports:
            h.fail("sanitizer report in the relais log:\n%s" % "\n".join(reports[:20]))

    checks.run("relais exits cleanly with no sanitizer report", clean_exit)
    for p in phones:
        p.close()


def _to_tag(msg):
    return tag_of(msg.get("to"))


def _from_tag(msg):
    return tag_of(msg.get("from"))


if __name__ == "__main__":
    h.main(test)
