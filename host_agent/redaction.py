"""Keep secrets that ride inside URLs out of messages, logs and replies.

A Redis or NATS URL may carry a password (`redis://:secret@host:6379`, or
`?password=secret` in the query, which redis-py also reads). Anything that shows a URL
to a person, a log or a caller shows `redact_url(url)`; text that may quote the URL or
its secret (a library's error message) goes through `redact_text`.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry a credential in the URL schemes we accept.
SECRET_QUERY_KEYS = frozenset({"password", "pass", "passwd", "token", "secret", "auth"})


def _split(url: str) -> tuple[str, str, str, str, str] | None:
    try:
        return tuple(urlsplit(url))  # type: ignore[return-value]
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None


def url_secrets(url: str) -> list[str]:
    """The secret values a URL carries: its password and secret query values."""
    parts = _split(url)
    if parts is None:
        return []
    _, netloc, _, query, _ = parts
    found: list[str] = []
    userinfo, at, _ = netloc.rpartition("@")
    if at and ":" in userinfo:
        password = userinfo.split(":", 1)[1]
        if password:
            # Both spellings: libraries quote the decoded password in their errors.
            found += {password, unquote(password)}
    found += [v for k, v in parse_qsl(query, keep_blank_values=True) if _secret(k) and v]
    return found


def _secret(key: str) -> bool:
    return key.lower() in SECRET_QUERY_KEYS


def redact_url(url: str) -> str:
    """The URL with its password and secret query values replaced by `***`; the user
    name, host, port, path and other parameters stay, so the message still says where."""
    parts = _split(url)
    if parts is None:
        return MASK if url_secrets(url) or "@" in url else url
    scheme, netloc, path, query, fragment = parts
    userinfo, at, hostport = netloc.rpartition("@")
    if at and ":" in userinfo:
        user, _, password = userinfo.partition(":")
        if password:
            netloc = f"{user}:{MASK}@{hostport}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret(k) and v for k, v in pairs):
            query = urlencode([(k, MASK if _secret(k) and v else v) for k, v in pairs], safe="*")
    return urlunsplit((scheme, netloc, path, query, fragment))


def redact_text(text: str, url: str) -> str:
    """`text` with `url` shown redacted and each of its secrets masked wherever it appears."""
    text = text.replace(url, redact_url(url))
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
