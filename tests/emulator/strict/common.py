"""What several patched operations share: ECR's wildcards and its pages."""

import re


def wildcard(filter_text):
    """An ECR wildcard filter as a regex over the whole name: `*` (the only metacharacter) is any run of characters."""
    return re.compile("^" + ".*".join(re.escape(part) for part in filter_text.split("*")) + "$")


def page(key, items, size, token):
    """One page of `items` under `key`, from the offset `token` (None: the first), with the next token if more follow."""
    start = int(token or 0)
    answer = {key: items[start:start + size]}
    if start + size < len(items):
        answer["nextToken"] = str(start + size)
    return answer
