"""A client for an OpenAI-compatible chat endpoint that writes each class's text bank.

When a curator labels a collection, each class gets a text bank: synonyms and visual
attributes. A chat model that the user runs on their own machine (a llama.cpp server, Ollama,
vLLM) may write them, but only when the user names its URL (`--generator URL
--generator-model NAME`): nothing here is contacted by default, and no service on the internet
is built in.

The endpoint's answers are treated as hostile: the body is read within a byte cap, must be the
JSON an OpenAI-compatible server sends, and the text in it is only ever parsed as data.
Answers are cached in one SQLite file, keyed without any credential; an API key is sent only
as a header, and is never written into an error message or the cache.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import ipaddress
import json
import os
import re
import sqlite3
import time
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import SashieError

MAX_ANSWER_BYTES = 1024 * 1024
BACKOFF = 0.5  # seconds before the first retry, doubled before each next one
MAX_WAIT = 10.0  # the longest wait before a retry, whatever the server's Retry-After says
CACHE_FILE = "generator.sqlite"
MAX_ITEMS = 10
MAX_ITEM_CHARS = 60
USER_AGENT = "sashie (+https://github.com/sashie)"


class GeneratorError(SashieError):
    """The endpoint cannot be used (unreachable, bad answers); one line naming the URL (never
    any token)."""


@dataclass(frozen=True)
class Described:
    synonyms: tuple[str, ...]
    attributes: tuple[str, ...]


@dataclass(frozen=True)
class ChatServer:
    """A chat model the user runs and names (`--generator URL --generator-model NAME`, or
    `--paraphraser`): the library opens it with its own answer cache; a key, when the server
    needs one, comes from the environment (SASHIE_GENERATOR_KEY, SASHIE_PARAPHRASER_KEY)."""

    url: str
    model: str
    role: str = "generator"  # what the user called it: generator or paraphraser

    def __post_init__(self) -> None:
        if not (self.model or "").strip():
            raise GeneratorError(f"--{self.role} needs --{self.role}-model NAME")

    def endpoint(self, cache_dir: str | os.PathLike[str]) -> ChatEndpoint:
        key = os.environ.get(f"SASHIE_{self.role.upper()}_KEY")
        return ChatEndpoint(self.url, self.model, cache_dir=cache_dir, api_key=key, role=self.role)


class ChatEndpoint:
    """One model on an OpenAI-compatible server that the user names (`/v1/chat/completions`)."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        timeout: float = 30.0,
        retries: int = 2,
        api_key: str | None = None,
        role: str = "generator",
    ) -> None:
        """`role` names the server in messages: what the user called it (--generator,
        --paraphraser)."""
        self.role = role
        self.url, login = _chat_url(url, role)
        if not model.strip():
            raise GeneratorError(f"no model named for the {self.role} at {self.url}")
        self.model = model
        self.timeout = timeout
        self.retries = max(0, retries)
        self.cache_file = None if cache_dir is None else Path(cache_dir) / CACHE_FILE
        self._authorization: str | None = None
        if api_key:
            self._authorization = f"Bearer {api_key}"
        elif login:
            self._authorization = "Basic " + base64.b64encode(login.encode()).decode("ascii")
        password = login.partition(":")[2] if login else None
        self._secrets = [s for s in (api_key, login, password, self._authorization) if s]
        # a server on this machine is never reached through a proxy set for the web
        proxies = urllib.request.ProxyHandler({} if _is_loopback(self.url) else None)
        self._opener = urllib.request.build_opener(proxies, _NoRedirects)

    def __repr__(self) -> str:
        return f"ChatEndpoint({self.url!r}, {self.model!r})"

    def complete(self, prompt: str, *, system: str | None = None) -> str:
        """The assistant's text for one user prompt (temperature 0), from the disk cache when
        asked before."""
        key = self._cache_key(prompt, system)
        cached = self._cached(key)
        if cached is not None:
            return cached
        messages = [] if system is None else [{"role": "system", "content": system}]
        messages.append({"role": "user", "content": prompt})
        body = {"model": self.model, "messages": messages, "temperature": 0, "stream": False}
        text = self._text_of(self._post(json.dumps(body).encode("utf-8")))
        self._store(key, text)
        return text

    # --- the request -------------------------------------------------------------------------

    def _post(self, body: bytes) -> bytes:
        """The answer's body, after at most `retries` retries of what may pass (a refused or
        dropped connection, a timeout, HTTP 429 and 5xx)."""
        tries = self.retries + 1
        failure = ""
        for attempt in range(tries):
            request = urllib.request.Request(self.url, data=body, method="POST")
            request.add_header("Content-Type", "application/json")
            request.add_header("Accept", "application/json")
            request.add_header("User-Agent", USER_AGENT)
            if self._authorization:
                request.add_unredirected_header("Authorization", self._authorization)
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return self._read(response)
            except urllib.error.HTTPError as e:
                with contextlib.closing(e):
                    detail = self._detail(e)
                if e.code != 429 and e.code < 500:
                    raise GeneratorError(self._line(self._refusal(e.code, detail))) from None
                failure = f"the {self.role} at {self.url} answered HTTP {e.code}{detail}"
                wait = _retry_after(e.headers.get("Retry-After"))
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                failure = f"cannot reach the {self.role} at {self.url} ({_reason(e, self.timeout)})"
                wait = None
            if attempt + 1 < tries:
                time.sleep(min(MAX_WAIT, BACKOFF * 2**attempt) if wait is None else wait)
        counted = f" ({tries} tries)" if tries > 1 else ""
        if failure.startswith("cannot reach"):
            raise GeneratorError(self._line(f"{failure}{counted}; is its server running?"))
        raise GeneratorError(self._line(failure + counted))

    def _read(self, response: http.client.HTTPResponse) -> bytes:
        too_big = GeneratorError(
            f"the {self.role} at {self.url} answered more than {_size(MAX_ANSWER_BYTES)}; "
            "is it an OpenAI-compatible server?"
        )
        length = response.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > MAX_ANSWER_BYTES:
            raise too_big
        data = response.read(MAX_ANSWER_BYTES + 1)
        if len(data) > MAX_ANSWER_BYTES:
            raise too_big
        return data

    def _detail(self, error: urllib.error.HTTPError) -> str:
        """What an error answer says, briefly: ': <its message>' or ''."""
        try:
            data = error.read(16 * 1024)
        except (OSError, http.client.HTTPException):
            return ""
        try:
            message = _error_message(json.loads(data))
        except (ValueError, RecursionError):
            message = data.decode("utf-8", "replace") if len(data) < 300 else ""
        message = self._clean(message, 120)
        return f": {message}" if message else ""

    def _refusal(self, code: int, detail: str) -> str:
        said = f"the {self.role} at {self.url} answered HTTP {code}{detail}"
        if 300 <= code < 400:
            return f"{said}, a redirect, which sashie does not follow; name the server's own URL"
        if code in (401, 403):
            return f"{said}; is its API key right?"
        if code == 404:
            return f"{said}; is it an OpenAI-compatible server, and is {self.model!r} its model?"
        return said

    def _text_of(self, data: bytes) -> str:
        """The assistant's text in an OpenAI-style answer."""
        try:
            answer = json.loads(data)
        except (ValueError, RecursionError):
            raise GeneratorError(
                f"the {self.role} at {self.url} answered something that is not JSON; "
                "is it an OpenAI-compatible server?"
            ) from None
        try:
            content = answer["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            message = self._clean(_error_message(answer), 120)
            said = f" ({message})" if message else ""
            raise GeneratorError(
                f"the {self.role} at {self.url} answered JSON without choices[0].message.content"
                f"{said}; is it an OpenAI-compatible server?"
            ) from None
        if isinstance(content, list):  # content parts, as some servers send them
            content = "".join(
                part["text"]
                for part in content
                if isinstance(part, dict) and isinstance(part.get("text"), str)
            )
        if not isinstance(content, str):
            raise GeneratorError(f"the {self.role} at {self.url} answered with no text")
        # a lone surrogate from the JSON could not be stored, nor printed
        return content.encode("utf-8", "replace").decode("utf-8")

    def _clean(self, text: str, limit: int) -> str:
        """`text` on one line, at most `limit` characters, with no credential in it."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = "".join(c if unicodedata.category(c)[0] != "C" else " " for c in text)
        text = " ".join(text.split())
        return text if len(text) <= limit else text[: limit - 1] + "…"

    def _line(self, message: str) -> str:
        return self._clean(message, 400)

    # --- the cache ---------------------------------------------------------------------------

    def _cache_key(self, prompt: str, system: str | None) -> str:
        material = json.dumps([self.url, self.model, system, prompt], ensure_ascii=False)
        return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()

    @contextlib.contextmanager
    def _cache(self) -> Iterator[sqlite3.Connection]:
        assert self.cache_file is not None
        try:
            self.cache_file.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(self.cache_file, timeout=30)) as db, db:
                db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, text TEXT)")
                yield db
        except (sqlite3.Error, OSError) as e:
            raise GeneratorError(
                self._line(f"cannot use the {self.role}'s cache {self.cache_file} ({e})")
            ) from None

    def _cached(self, key: str) -> str | None:
        if self.cache_file is None:
            return None
        with self._cache() as db:
            row = db.execute("SELECT text FROM answers WHERE key = ?", (key,)).fetchone()
        return row[0] if row and isinstance(row[0], str) else None

    def _store(self, key: str, text: str) -> None:
        if self.cache_file is not None:
            with self._cache() as db:
                db.execute("INSERT OR REPLACE INTO answers VALUES (?, ?)", (key, text))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect becomes an error answer: following one would carry the request (and its
    key) to wherever the server points."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def _chat_url(url: str, role: str) -> tuple[str, str | None]:
    """The chat-completions URL of a server's base URL, without credentials, and the
    'user:password' that the URL held, if any."""
    shown = " ".join(re.sub(r"(?<=//)[^/?#]*@", "", url).split())[:200]
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise GeneratorError(f"the {role} URL {shown!r} is not a URL") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise GeneratorError(f"the {role} URL must start with http:// or https:// (not {shown!r})")
    if not parts.hostname:
        raise GeneratorError(f"the {role} URL {shown!r} names no host")
    if parts.query or parts.fragment:
        raise GeneratorError(f"the {role} URL {shown!r} may not have a query or fragment")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions" if path.endswith("/v1") else "/v1/chat/completions"
    login = None
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        login = f"{user}:{urllib.parse.unquote(parts.password or '')}"
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, path, "", "")), login


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _reason(error: Exception, timeout: float) -> str:
    """Why a connection failed, in a few words."""
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, TimeoutError):
        return f"no answer in {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror[:1].lower() + reason.strerror[1:]
    return str(reason) or type(reason).__name__


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_WAIT, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def _error_message(answer: object) -> str:
    """The message in an OpenAI-style error answer ({"error": {"message": ...}}), or ''."""
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error", answer)
    if isinstance(error, dict):
        error = error.get("message", error.get("detail", ""))
    return error if isinstance(error, str) else ""


def _size(count: int) -> str:
    return f"{count / 1024 / 1024:g} MB" if count >= 1024 * 1024 else f"{count} bytes"


# --- text banks ----------------------------------------------------------------------------

_PROMPTS = {
    "en": (
        "You help a search engine for the illustrations in old printed books. "
        "Answer only in the format asked, with no other text.",
        'The class of illustrations "{name}".\n'
        "Write exactly two lines:\n"
        "synonyms: other words or short phrases for the same thing, comma-separated\n"
        "attributes: what one sees in a picture of it (shapes, parts, colours, materials, "
        "setting), as short phrases, comma-separated\n"
        "At most 10 of each, in English.",
    ),
    "ja": (
        "あなたは古い書物の挿絵を探す検索エンジンを手伝います。"
        "求められた形式だけで答え、ほかのことは書かないでください。",
        "挿絵の分類「{name}」。\n"
        "次の2行だけを書いてください。\n"
        "synonyms: 同じものを指す別の語や短い句を、読点「、」で区切って\n"
        "attributes: その絵に見えるもの（形、部分、色、材質、背景など）を短い句で、"
        "読点「、」で区切って\n"
        "それぞれ10個まで、日本語で。",
    ),
}


def describe_classes(
    endpoint: ChatEndpoint,
    names: Sequence[str],
    *,
    language: str = "en",
    progress: bool = False,
) -> dict[str, Described]:
    """Synonyms and visual attributes of each class name, asked of the endpoint (one prompt
    per class)."""
    code = language.strip().lower().replace("_", "-").split("-")[0]
    if code not in _PROMPTS:
        raise SashieError(f"no text-bank prompt in language {language!r}; use en or ja")
    system, template = _PROMPTS[code]
    described: dict[str, Described] = {}
    for name in tqdm(names, desc="text bank", unit="class", disable=not progress, leave=False):
        if name in described:
            continue
        label = " ".join(name.split())
        if not label:
            described[name] = Described((), ())
            continue
        answer = endpoint.complete(template.format(name=label), system=system)
        described[name] = parse_description(answer, name)
    return described


_THINKING = re.compile(r"<think>.*?(?:</think>|\Z)", re.S | re.I)
_LABEL = re.compile(
    r"^[\s>#*_\-•・·+]*(?:\d+[.)．]\s*)?[*_]*\s*"
    r"(synonyms?|attributes?|同義語|類義語|別名|特徴|属性)"
    r"\s*[*_]*\s*(?:\([^)]*\)|（[^）]*）)?\s*[:：]\s*[*_]*(.*)$",
    re.I,
)
_MARKER = re.compile(r"^\s*(?:[-*•・·+]|\d+[.)．、]|[(（]\d+[)）])\s*")
_SEPARATOR = re.compile(r"[,、，;；]")
_WRAPPING = " \t\"'`*_“”‘’「」『』[]【】()（）"


def parse_description(text: str, name: str) -> Described:
    """The text bank in a model's answer: the items of its "synonyms:" and "attributes:"
    lines (or of the bulleted lines under them), cleaned; empty where there are none."""
    found: dict[str, list[str]] = {"synonyms": [], "attributes": []}
    current: str | None = None
    listing = False  # a label line with nothing after it: a list follows
    for raw in _THINKING.sub("", text).splitlines():
        line = raw.strip()
        if not line:
            if current and found[current]:
                current = None
            continue
        label = _LABEL.match(line)
        if label:
            word = label.group(1).lower()
            synonyms = word.startswith("syn") or word in ("同義語", "類義語", "別名")
            current = "synonyms" if synonyms else "attributes"
            found[current] += _SEPARATOR.split(label.group(2))
            listing = not label.group(2).strip(_WRAPPING)
            continue
        marker = _MARKER.match(line)
        if current and (marker or listing):
            found[current] += _SEPARATOR.split(line[marker.end() :] if marker else line)
    own = _key(name)
    return Described(_clean_items(found["synonyms"], own), _clean_items(found["attributes"], own))


def _clean_items(items: list[str], own: str) -> tuple[str, ...]:
    kept: dict[str, str] = {}
    for item in items:
        item = _MARKER.sub("", item).strip(_WRAPPING).rstrip(".。").strip(_WRAPPING)
        if any(unicodedata.category(c)[0] == "C" for c in item):
            continue
        item = " ".join(item.split())
        if not item or len(item) > MAX_ITEM_CHARS:
            continue
        key = _key(item)
        if key != own and key not in kept:
            kept[key] = item
    return tuple(kept.values())[:MAX_ITEMS]


def _key(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())
