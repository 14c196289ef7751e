"""legible.redact: secrets of each kind go, paths and ordinary text stay, structured data stays well-formed."""

from __future__ import annotations

import json

from legible.redact import REDACTED, Redactor, fold, is_secret_name, secret_values

ENV = {
    "DB_PASSWORD": "Geheim-2024-Kette",
    "STRIPE_API_KEY": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "GITHUB_TOKEN": "not-a-gh-shape-but-a-token-value",
    "DATABASE_URL": "postgres://shop:Url-Pass-77x@127.0.0.1:5432/shop",
    "PWD": "/work/wt/h3",
    "OLDPWD": "/work/wt",
    "HOME": "/root",
    "GIT_AUTHOR_NAME": "Ada Lovelace",
    "SSH_AUTH_SOCK": "/tmp/ssh-XXXX/agent.1",
    "XDG_SESSION_TYPE": "tty",
    "XDG_RUNTIME_DIR": "/run/user/0",
}


def test_secret_names_are_the_documented_ones_and_paths_are_not_secret() -> None:
    assert [n for n in ENV if is_secret_name(n)] == ["DB_PASSWORD", "STRIPE_API_KEY", "GITHUB_TOKEN"]
    values = secret_values(ENV)
    assert "Url-Pass-77x" in values  # the password inside DATABASE_URL, not the whole URL
    assert not any(v in values for v in ("/work/wt/h3", "/work/wt", "/root", "Ada Lovelace", "tty"))


def test_every_kind_of_secret_is_redacted_in_text() -> None:
    red = Redactor(secret_values(ENV))
    cases = {
        'ERROR login failed password="p4ss word 9"': "p4ss word 9",
        '{"password": "json-quoted-secret", "user": "ada"}': "json-quoted-secret",
        "Authorization: Bearer abc.DEF-123_tok": "abc.DEF-123_tok",
        "calling https://shopper:UrlCred99@pay.example/x": "UrlCred99",
        "GET /checkout?token=qtok-123456&step=2": "qtok-123456",
        "GET /order?password=swordfish-7 200": "swordfish-7",
        "key sk_live_4eC39HqLyjWDarjtT1zdp7dc used": "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "db auth failed for Geheim-2024-Kette": "Geheim-2024-Kette",
        "db auth failed for Geheim-<n>-Kette": "Geheim-<n>-Kette",  # the store's template of that line
        "api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc": "sk_live",
        "x-api-key: 0123abcd" + "ef" * 10: "ef" * 10,
    }
    for text, secret in cases.items():
        out = red.text(text)
        assert secret not in out, (text, out)
        assert REDACTED in out, (text, out)
        assert "[REDACTED]]" not in out


def test_ordinary_text_and_the_worktree_path_stay() -> None:
    red = Redactor(secret_values(ENV))
    for text in ("cwd /work/wt/h3 PWD=/work/wt/h3", "GET /orders 200 in 12 ms", "Ada Lovelace ordered 2 cups"):
        assert red.text(text) == text


def test_fold_matches_the_store_template() -> None:
    assert fold("order 42 took 1.5 ms id 0123abcd99") == "order <n> took <n> ms id <hex>"


def test_structured_data_stays_well_formed_and_keys_and_values_are_redacted() -> None:
    red = Redactor(secret_values(ENV))
    doc = {
        "password": "x y",
        'he said "password": "q"': [1, None, True, 2.5, "Bearer abcdefghijk"],
        "nested": {"Authorization": "Basic dXNlcjpwYXNz", "title": "goto /login?password=pw123456"},
        "weird": 'unbalanced " quote and \\ backslash password="Unterminated-1',
    }
    out = red.doc(doc)
    text = json.dumps(out)
    json.loads(text)
    for secret in ("x y", "abcdefghijk", "dXNlcjpwYXNz", "pw123456", "Unterminated"):
        assert secret not in text, secret
    assert out["password"] == REDACTED and out["nested"]["Authorization"] == REDACTED
    assert out["weird"].startswith('unbalanced " quote')
