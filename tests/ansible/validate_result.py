#!/usr/bin/env python3
"""Check the outcome of validate.yml for one host of validate_cases.yml.

Usage: validate_result.py RESULT_JSON INVENTORY_JSON HOST

RESULT_JSON is the output of ansible-playbook with the json stdout callback,
and INVENTORY_JSON the output of "ansible-inventory --list". A host with the
variable expect_text passes when a validate task failed on it with a message
that contains expect_text. A host without it passes when no task failed.
Prints what happened and exits 0 when the host passes, 1 when it does not.
"""

import json
import sys


def failure_messages(result):
    """Return the messages of a failed task result and of its failed loop items."""
    messages = []
    if result.get("failed"):
        messages.append(str(result.get("msg", "")))
    for item in result.get("results", []):
        messages.extend(failure_messages(item))
    return messages


def main():
    result_path, inventory_path, host = sys.argv[1:4]
    with open(result_path, encoding="utf-8") as file:
        run = json.load(file)
    with open(inventory_path, encoding="utf-8") as file:
        inventory = json.load(file)

    expect_text = inventory["_meta"]["hostvars"][host].get("expect_text")
    stats = run["stats"].get(host)
    if stats is None:
        print(f"host {host} is missing from the playbook result")
        return 1

    messages = []
    for play in run["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get(host)
            if result is not None:
                messages.extend(failure_messages(result))
    failed = stats.get("failures", 0) > 0 or stats.get("unreachable", 0) > 0

    for message in messages:
        print(f"failure message: {message}")
    if expect_text is None:
        print(f"expected: no failure; failed: {failed}")
        return 1 if failed else 0
    print(f"expected: a failure whose message contains {expect_text!r}; failed: {failed}")
    return 0 if failed and any(expect_text in message for message in messages) else 1


if __name__ == "__main__":
    sys.exit(main())
