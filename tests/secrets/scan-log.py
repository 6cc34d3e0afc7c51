#!/usr/bin/env python3
"""Look for test passwords in a syslog file.

Usage: scan-log.py LOG PASSWORD_LIST

PASSWORD_LIST has one attempt per line, the user name and the password as two
hex strings separated by a tab (tests/common/mod.rs writes it when
PAM_MAPI_TEST_PASSWORD_LIST is set). Each password is searched for as typed, as
pam_mapi's log escaping writes it, XML-escaped, in Kopano's {2}: obfuscation,
and inside an HTTP Basic token. Passwords shorter than MIN_BYTES are skipped,
because words such as "wrong" or "plain" also occur in ordinary log lines.
Exits 1 and prints the offending lines if any password is found.
"""

import base64
import sys

MIN_BYTES = 8


def for_log(text: str) -> str:
    """Escape as pam_mapi's input::for_log does (quotes, backslashes, controls)."""
    out = []
    for c in text:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\ufffe\uffff":
            out.append("\\u{%x}" % ord(c))
        else:
            out.append(c)
    return "".join(out)


def xml_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("'", "&apos;").replace('"', "&quot;"))


def forms(user: bytes, password: bytes) -> set:
    """Return the byte strings under which the password could show up in a log."""
    found = {password}
    try:
        text = password.decode("utf-8")
        found.add(for_log(text).encode("utf-8"))
        found.add(xml_escape(text).encode("utf-8"))
    except UnicodeDecodeError:
        pass
    found.add(base64.b64encode(bytes(b ^ 0xA5 for b in password)))
    found.add(base64.b64encode(user + b":" + password))
    return found


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    log_path, list_path = sys.argv[1], sys.argv[2]
    with open(log_path, "rb") as f:
        lines = f.read().splitlines()
    attempts = set()
    with open(list_path, encoding="ascii") as f:
        for row in f:
            user_hex, _, password_hex = row.rstrip("\n").partition("\t")
            attempts.add((bytes.fromhex(user_hex), bytes.fromhex(password_hex)))

    checked = {(user, password) for user, password in attempts if len(password) >= MIN_BYTES}
    skipped = {password for _, password in attempts if len(password) < MIN_BYTES}
    needles = set()
    for user, password in checked:
        needles |= forms(user, password)

    hits = [line for line in lines if any(needle in line for needle in needles)]
    print(f"scanned {len(lines)} log lines for {len({p for _, p in checked})} passwords "
          f"({len(skipped)} shorter than {MIN_BYTES} bytes skipped)")
    for line in hits:
        print("password in log: " + line.decode("utf-8", "replace"))
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())
