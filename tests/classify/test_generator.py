"""The text-bank generator: a client for an OpenAI-compatible chat endpoint that the user names.
A local HTTP server stands in for the user's llama.cpp / Ollama / vLLM server. Answers become
synonyms and attributes; the disk cache answers without the server; what may pass is retried
and what may not is one line at once; hostile answers and bad URLs are refused; the API key
goes only into the header."""

from __future__ import annotations

import json
import socket

import pytest
from fake_chat import FakeModel, Reply, chat

from sashie.classify import generator
from sashie.classify.generator import (
    ChatEndpoint,
    Described,
    GeneratorError,
    describe_classes,
    parse_description,
)
from sashie.errors import SashieError

KEY = "sk-very-secret-0123456789"


@pytest.fixture
def server():
    fake = FakeModel()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch):
    monkeypatch.setattr(generator, "BACKOFF", 0.01)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_line(error: pytest.ExceptionInfo) -> str:
    message = str(error.value)
    assert "\n" not in message and "\r" not in message and 0 < len(message) < 400, message
    return message


# --- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["", "/", "/v1", "/v1/"])
def test_answers_become_synonyms_and_attributes(server, base):
    answers = {
        "cat": "Synonyms: Cat, kitten, house cat, moggy\n"
        f"Attributes: whiskers, a long tail, {'x' * 61}, bell\x07, , pointed ears",
        "pine tree": "synonyms: pine, conifer\nattributes: needles, cones",
    }
    server.answer = lambda prompt: next(a for n, a in answers.items() if f'"{n}"' in prompt)
    endpoint = ChatEndpoint(server.url + base, "llama-3")
    described = describe_classes(endpoint, ["cat", "pine tree", "cat"])
    assert described == {
        "cat": Described(
            ("kitten", "house cat", "moggy"), ("whiskers", "a long tail", "pointed ears")
        ),
        "pine tree": Described(("pine", "conifer"), ("needles", "cones")),
    }
    assert len(server.requests) == 2  # one prompt per class
    for request in server.requests:
        assert request["path"] == "/v1/chat/completions"
        assert request["model"] == "llama-3" and request["temperature"] == 0
        assert [m["role"] for m in request["messages"]] == ["system", "user"]
        assert "synonyms:" in request["messages"][1]["content"]
        assert "Authorization" not in request["headers"]


def test_japanese_prompts_and_answers(server):
    server.answer = lambda prompt: "synonyms：ねこ、ネコ、猫\nattributes: ひげ、 長い尾 、耳"
    described = describe_classes(ChatEndpoint(server.url, "m"), ["猫"], language="ja")
    assert described == {"猫": Described(("ねこ", "ネコ"), ("ひげ", "長い尾", "耳"))}
    prompt = server.requests[0]["messages"][1]["content"]
    assert "「猫」" in prompt and "日本語" in prompt


def test_an_unknown_language_is_refused_before_asking(server):
    with pytest.raises(SashieError, match="language"):
        describe_classes(ChatEndpoint(server.url, "m"), ["cat"], language="xx")
    assert server.requests == []


def test_an_answer_that_cannot_be_parsed_gives_an_empty_bank(server):
    server.answer = lambda prompt: "I am sorry, I cannot help with that."
    described = describe_classes(ChatEndpoint(server.url, "m"), ["cat"], progress=True)
    assert described == {"cat": Described((), ())}


@pytest.mark.parametrize(
    ("answer", "synonyms", "attributes"),
    [
        (  # chatty, bold labels, numbered and bulleted lists under them
            "Sure! Here you go.\n\n**Synonyms:**\n1. kitten\n2) house cat\n\n"
            "**Attributes**:\n- whiskers\n* soft fur.\n\nI hope this helps!",
            ("kitten", "house cat"),
            ("whiskers", "soft fur"),
        ),
        (  # a reasoning model's thoughts are not the answer
            "<think>synonyms: wrong, words</think>\nsynonyms: kitten\nattributes: fur",
            ("kitten",),
            ("fur",),
        ),
        (  # the class name itself, duplicates and quotes are dropped
            'synonyms: "Kitten", kitten, CAT, 「tabby」\nattributes: fur',
            ("Kitten", "tabby"),
            ("fur",),
        ),
        (  # at most ten of each
            "synonyms: " + ", ".join(f"word{i}" for i in range(15)) + "\nattributes:",
            tuple(f"word{i}" for i in range(10)),
            (),
        ),
        (  # control characters (a bidi override, an escape) are not text
            "synonyms: kit\u202eten, ki\x1b[31mtty, puss\nattributes: fur",
            ("puss",),
            ("fur",),
        ),
        ("no labels here, just words, and commas", (), ()),
    ],
)
def test_answers_are_read_leniently(answer, synonyms, attributes):
    assert parse_description(answer, "cat") == Described(synonyms, attributes)


# --- the cache -----------------------------------------------------------------------------


def test_the_cache_answers_when_the_server_is_gone(server, tmp_path):
    server.answer = lambda prompt: f"echo {prompt}"
    endpoint = ChatEndpoint(server.url, "m", cache_dir=tmp_path / "cache", retries=0)
    assert endpoint.complete("hello", system="be brief") == "echo hello"
    assert (tmp_path / "cache" / "generator.sqlite").is_file()
    server.stop()
    assert endpoint.complete("hello", system="be brief") == "echo hello"
    # the same server named another way shares the cache
    again = ChatEndpoint(server.url + "/v1/", "m", cache_dir=tmp_path / "cache", retries=0)
    assert again.complete("hello", system="be brief") == "echo hello"
    # another prompt, system or model is asked of the server, which is gone
    other_model = ChatEndpoint(server.url, "other", cache_dir=tmp_path / "cache", retries=0)
    for asker, prompt, system in [
        (endpoint, "goodbye", "be brief"),
        (endpoint, "hello", None),
        (other_model, "hello", "be brief"),
    ]:
        with pytest.raises(GeneratorError):
            asker.complete(prompt, system=system)
    assert len(server.requests) == 1


def test_without_a_cache_dir_every_call_asks(server):
    endpoint = ChatEndpoint(server.url, "m")
    endpoint.complete("hello")
    endpoint.complete("hello")
    assert len(server.requests) == 2


# --- failures ------------------------------------------------------------------------------


def test_one_503_is_retried(server):
    server.replies = [Reply(503, b"loading model")]
    assert ChatEndpoint(server.url, "m").complete("hello") == "synonyms: a\nattributes: b"
    assert len(server.requests) == 2


def test_the_last_retry_gives_one_line(server):
    server.replies = [Reply(503, b"busy"), Reply(429, b"slow down"), Reply(502, b"bad gateway")]
    with pytest.raises(GeneratorError) as error:
        ChatEndpoint(server.url, "m", retries=2).complete("hello")
    message = one_line(error)
    assert "HTTP 502" in message and "3 tries" in message and server.url in message
    assert len(server.requests) == 3


def test_an_unreachable_server_is_one_line():
    port = free_port()
    endpoint = ChatEndpoint(f"http://127.0.0.1:{port}", "m", retries=1)
    with pytest.raises(GeneratorError) as error:
        endpoint.complete("hello")
    message = one_line(error)
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in message
    assert "connection refused" in message and "is its server running?" in message


def test_a_slow_server_times_out(server):
    server.replies = [Reply(body=chat("late"), delay=2.0)]
    with pytest.raises(GeneratorError) as error:
        ChatEndpoint(server.url, "m", timeout=0.2, retries=0).complete("hello")
    assert "no answer in 0.2 s" in one_line(error)


def test_a_400_is_not_retried(server):
    problem = {"error": {"message": "model 'nope' not found\nsecond line", "type": "invalid"}}
    server.replies = [Reply(400, json.dumps(problem).encode())]
    with pytest.raises(GeneratorError) as error:
        ChatEndpoint(server.url, "nope", retries=2).complete("hello")
    message = one_line(error)
    assert "HTTP 400" in message and "model 'nope' not found second line" in message
    assert len(server.requests) == 1


def test_a_redirect_is_not_followed(server):
    server.replies = [Reply(307, b"", {"Location": server.url + "/elsewhere"})]
    with pytest.raises(GeneratorError, match="redirect") as error:
        ChatEndpoint(server.url, "m", api_key=KEY).complete("hello")
    one_line(error)
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/v1",
        "file:///etc/passwd",
        "127.0.0.1:8080",
        "javascript:alert(1)",
        "http:///v1",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:8080/v1?key=abc",
    ],
)
def test_a_url_that_is_not_an_http_server_is_refused(url):
    with pytest.raises(GeneratorError, match="generator URL") as error:
        ChatEndpoint(url, "m")
    one_line(error)


@pytest.mark.parametrize("length", [True, False])
def test_a_huge_answer_is_refused(server, length):
    body = b'{"choices": [{"message": {"content": "' + b"x" * (2 * 1024 * 1024) + b'"}}]}'
    server.replies = [Reply(body=body, length=length)]
    with pytest.raises(GeneratorError, match="more than 1 MB") as error:
        ChatEndpoint(server.url, "m").complete("hello")
    one_line(error)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>It works!</body></html>",
        b"\xff\xfe not even text",
        b"[" * 100_000,
        b'{"choices": []}',
        b'{"choices": [{"text": "a completion, not a chat"}]}',
        b'{"error": {"message": "out of memory\\nat line 3"}}',
        chat(None),
        b'"just a string"',
    ],
)
def test_an_answer_that_is_not_a_chat_completion_is_refused(server, body):
    server.replies = [Reply(body=body)]
    with pytest.raises(GeneratorError, match=r"OpenAI-compatible|no text") as error:
        ChatEndpoint(server.url, "m").complete("hello")
    one_line(error)
    assert len(server.requests) == 1


# --- credentials ---------------------------------------------------------------------------


def test_the_api_key_goes_only_into_the_header(server, tmp_path):
    endpoint = ChatEndpoint(server.url, "m", cache_dir=tmp_path, api_key=KEY)
    endpoint.complete(f"hello {KEY[:4]}")
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {KEY}"
    assert KEY.encode() not in (tmp_path / "generator.sqlite").read_bytes()
    assert KEY not in repr(endpoint)
    # a server that echoes the key back does not get it into the error
    server.replies = [Reply(401, json.dumps({"error": {"message": f"bad key {KEY}"}}).encode())]
    with pytest.raises(GeneratorError) as error:
        endpoint.complete("again")
    assert KEY not in one_line(error) and "HTTP 401" in str(error.value)
    server.stop()
    with pytest.raises(GeneratorError) as error:
        ChatEndpoint(server.url, "m", api_key=KEY, retries=0).complete("gone")
    assert KEY not in one_line(error)


def test_credentials_in_the_url_are_sent_but_never_shown(server, tmp_path):
    url = server.url.replace("http://", "http://curator:pa55word@")
    endpoint = ChatEndpoint(url, "m", cache_dir=tmp_path)
    endpoint.complete("hello")
    assert server.requests[0]["headers"]["Authorization"] == "Basic Y3VyYXRvcjpwYTU1d29yZA=="
    assert "pa55word" not in endpoint.url and "pa55word" not in repr(endpoint)
    assert b"pa55word" not in (tmp_path / "generator.sqlite").read_bytes()
    server.replies = [Reply(403, b"pa55word is wrong")]
    with pytest.raises(GeneratorError) as error:
        endpoint.complete("again")
    assert "pa55word" not in one_line(error)
