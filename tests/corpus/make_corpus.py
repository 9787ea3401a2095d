#!/usr/bin/env python3
"""Writes tests/corpus/requests.jsonl: lipcast's committed bad-input corpus (standard library only).

Every line is one hostile request and what the server must answer. `tests/e2e/corpus.rs` runs them all
against a real supervisor; `tests/corpus/README.md` describes the format. The file is committed; re-run
this script after editing it (the output is deterministic) and review the diff.
"""

import base64
import json
import os

CASES = []


def case(id_, what, body=None, expect=(400, "invalid_request"), method="POST", path="/launch",
         headers=None, auth=True, content_type=None, detail=None):
    status, error = expect
    c = {"id": id_, "what": what, "method": method, "path": path}
    if headers:
        c["headers"] = headers
    if not auth:
        c["auth"] = False
    if content_type is not None:
        c["content_type"] = content_type
    if body is not None:
        c["body"] = body
    e = {"status": status, "error": error}
    if detail:
        e["detail_contains"] = detail
    c["expect"] = e
    assert not any(x["id"] == id_ for x in CASES), id_
    CASES.append(c)


def base(**changes):
    """The plugin's JSON body (valid: it would be admitted) with `changes` applied; None removes a key."""
    b = {"livekit_url": "{{lk}}", "livekit_token": "{{token}}", "room_name": "corpus"}
    for k, v in changes.items():
        if v is None:
            b.pop(k, None)
        else:
            b[k] = v
    return {"json": b}


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def jwt(payload: bytes, sig="c2ln") -> str:
    """A JWT-shaped token with this payload (signature not valid: the supervisor only reads the claims)."""
    p = base64.urlsafe_b64encode(payload).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{p}.{sig}"


def form(*parts, boundary=None):
    """A multipart body; parts are dicts (name, text|base64|gen, filename, content_type)."""
    b = {"multipart": list(parts)}
    if boundary:
        b["boundary"] = boundary
    return b


def text_part(name, value):
    return {"name": name, "text": value}


def valid_form_parts(**changes):
    parts = {"livekit_url": "{{lk}}", "livekit_token": "{{token}}", "room_name": "corpus"}
    for k, v in changes.items():
        if v is None:
            parts.pop(k, None)
        else:
            parts[k] = v
    return [text_part(k, v) for k, v in parts.items()]


# --- Malformed JSON -----------------------------------------------------------------------------------
malformed = [
    ("{", "an unclosed object"),
    ("}", "a lone closing brace"),
    ("", "an empty body"),
    ("   \n\t ", "only whitespace"),
    ("null", "null"),
    ("[]", "an array"),
    ("[{\"livekit_url\": \"ws://x\"}]", "an object inside an array"),
    ("1", "a number"),
    ("\"livekit_url\"", "a string"),
    ("true", "a boolean"),
    ("{\"livekit_url\": }", "a missing value"),
    ("{\"livekit_url\" \"ws://x\"}", "a missing colon"),
    ("{\"a\": 1,}", "a trailing comma"),
    ("{'livekit_url': 'ws://x'}", "single quotes"),
    ("{livekit_url: \"ws://x\"}", "unquoted keys"),
    ("{\"a\": NaN}", "NaN"),
    ("{\"a\": Infinity}", "Infinity"),
    ("{\"a\": 01}", "a leading zero"),
    ("{\"a\": 1e999999}", "a number out of range"),
    ("{\"a\": 1} {\"b\": 2}", "two objects"),
    ("{\"a\": 1} trailing", "trailing garbage"),
    ("// comment\n{}", "a comment"),
    ("{\"a\": \"\\x41\"}", "an invalid escape"),
    ("{\"a\": \"\\u12\"}", "a short unicode escape"),
    ("{\"a\": \"\\ud800\"}", "a lone high surrogate"),
    ("{\"a\": \"\\udc00\"}", "a lone low surrogate"),
    ("{\"a\": \"tab\there\"}", "a raw control character in a string"),
    ("{\"a\": \"unterminated}", "an unterminated string"),
    ("{\"room_name\": \"corpus\"", "truncated mid-object"),
    ("\ufeff{\"room_name\": \"r\"}", "a byte-order mark"),
]
for i, (body, what) in enumerate(malformed):
    case(f"json-malformed-{i:02}", f"malformed JSON: {what}", {"text": body}, (400, "invalid_json"))
raw_bytes = [
    (b"{\"room_name\": \"\xff\xfe\"}", "invalid UTF-8 bytes in a string"),
    (b"{\"room_name\": \"\xc0\xaf\"}", "an overlong UTF-8 encoding of '/'"),
    (b"{\"room_name\": \"\xe0\x80\xaf\"}", "a three-byte overlong encoding"),
    (b"{\"room_name\": \"\xed\xa0\x80\"}", "a UTF-8-encoded surrogate"),
    (b"{\"room_name\": \"\xf4\x90\x80\x80\"}", "a code point above U+10FFFF"),
    (b"{\"room_name\": \"ab\xe2\x82\"}", "a truncated UTF-8 sequence"),
    ("{\"room_name\": \"r\"}".encode("utf-16"), "UTF-16 with a byte-order mark"),
    ("{\"room_name\": \"r\"}".encode("utf-32-le"), "UTF-32"),
    (b"\x00" * 64, "NUL bytes"),
    (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", "a gzip header"),
]
for i, (body, what) in enumerate(raw_bytes):
    case(f"json-bytes-{i:02}", f"malformed JSON: {what}", {"base64": b64(body)}, (400, "invalid_json"))
case("json-deep-200", "JSON nested 200 levels deep (arrays)", {"gen": "json_deep_arrays", "n": 200},
     (400, "invalid_json"))
case("json-deep-100000", "JSON nested 100000 levels deep (arrays)", {"gen": "json_deep_arrays", "n": 100000},
     (400, "invalid_json"))
case("json-deep-objects-5000", "JSON objects nested 5000 levels deep", {"gen": "json_deep_objects", "n": 5000},
     (400, "invalid_json"))
case("json-deep-in-field", "a launch whose `prompt` is an object nested 1000 levels deep",
     {"gen": "json_deep_in_field", "n": 1000}, (400, "invalid_json"))
case("json-wide-100000", "a JSON object with 100000 unknown keys and no required field",
     {"gen": "json_wide", "n": 100000}, (400, "invalid_request"), detail="is required")
case("json-11mb", "an 11 MB JSON body (limit 10 MB)", {"gen": "json_padded", "n": 11 * 1024 * 1024},
     (413, "too_large"))

# --- Wrong types --------------------------------------------------------------------------------------
wrong = {"number": 5, "float": 1.5, "true": True, "array": ["corpus"], "object": {"v": "corpus"},
         "negative": -1}
for field in ["livekit_url", "livekit_token", "room_name", "image", "avatar_image_url", "avatar_id",
              "agent_id", "prompt", "model", "mode", "api_secret"]:
    for name, value in wrong.items():
        case(f"type-{field}-{name}", f"`{field}` is a JSON {name}", base(**{field: value}),
             detail="must be a string")
for name, value in {"number": 5, "array": [], "object": {}, "string-maybe": "maybe", "string-empty": "",
                    "float": 0.0}.items():
    case(f"type-async_mode-{name}", f"`async_mode` is {name}", base(async_mode=value))

# --- Missing, empty and blank fields ------------------------------------------------------------------
for field in ["livekit_url", "livekit_token", "room_name"]:
    for name, value in {"missing": None, "empty": "", "blank": "   ", "newlines": "\n\n", "null": "NULL"}.items():
        if name == "null":
            body = {"json": {**base()["json"], field: None}}
        else:
            body = base(**{field: value})
        if name == "null":
            body["json"][field] = None
        case(f"empty-{field}-{name}", f"`{field}` is {name}", body, detail="is required")

# --- Field lengths ------------------------------------------------------------------------------------
limits = {"livekit_url": 2048, "livekit_token": 8192, "room_name": 256, "prompt": 2000, "model": 128,
          "mode": 128, "avatar_id": 64}
for field, limit in limits.items():
    value = "{{repeat:%d:a}}" % (limit + 1)
    if field == "livekit_url":
        value = "ws://h/{{repeat:%d:a}}" % (limit + 1 - len("ws://h/"))
    case(f"long-{field}", f"`{field}` one character over its limit of {limit}", base(**{field: value}),
         detail="longer than")
case("long-room-1mb", "a 1 MB room name", base(room_name="{{repeat:1000000:r}}"), detail="longer than")
case("long-prompt-5mb", "a 5 MB prompt", base(prompt="{{repeat:5000000:p}}"), detail="longer than")
case("long-token-100k", "a 100 kB token", base(livekit_token="{{repeat:100000:t}}"), detail="longer than")
case("long-image-url", "an image URL longer than 2048 characters",
     base(image="http://example.com/{{repeat:3000:a}}.jpg"), detail="longer than")
case("long-multibyte-room", "257 four-byte characters in the room name",
     base(room_name="{{repeat:257:\U0001F600}}"), detail="longer than")

# --- Unicode oddities ---------------------------------------------------------------------------------
# Inside the value, not at its ends: leading and trailing whitespace (which includes U+0085) is trimmed.
odd = {
    "nul": "cor\u0000pus", "bell": "cor\u0007pus", "escape": "x\u001b[31mcorpus", "del": "cor\u007fpus",
    "c1-nel": "cor\u0085pus", "c1-csi": "cor\u009bpus", "cr-lf": "corpus\r\nX-Injected: 1", "newline": "cor\npus",
    "tab": "cor\tpus", "rtl-override": "corpus\u202egpj.exe", "lre": "x\u202acorpus", "rle": "x\u202bcorpus",
    "pdf": "cor\u202cpus", "lro": "x\u202dcorpus", "lri": "x\u2066corpus", "rli": "x\u2067corpus",
    "fsi": "x\u2068corpus", "pdi": "cor\u2069pus", "vertical-tab": "cor\u000bpus", "form-feed": "cor\u000cpus",
    "backspace": "cor\u0008pus", "cr": "cor\rpus",
}
for name, value in odd.items():
    case(f"unicode-room-{name}", f"room_name with {name}", base(room_name=value))
for field in ["avatar_id", "model", "mode", "livekit_token"]:
    for name in ["nul", "escape", "rtl-override", "cr-lf"]:
        case(f"unicode-{field}-{name}", f"`{field}` with {name}", base(**{field: odd[name]}))
for name in ["nul", "escape", "bell", "del", "c1-nel"]:
    case(f"unicode-prompt-{name}", f"prompt with {name}", base(prompt="Be kind. " + odd[name] + " Thanks."))
case("unicode-url-nul", "livekit_url with a NUL", base(livekit_url="ws://h\u0000ost:7880"))
for name, value in {"dots": "../../etc/passwd", "slash": "a/b", "space": "a b", "unicode": "\u00e9t\u00e9",
                    "dot": "a.jpg", "percent": "%2e%2e"}.items():
    case(f"avatar-id-{name}", f"avatar_id {value!r}", base(avatar_id=value))
case("avatar-id-unknown", "an avatar_id with no portrait", base(avatar_id="nobody"), (400, "unknown_avatar"))
case("agent-id-unknown", "an agent_id with no portrait", base(agent_id="nobody-either"), (400, "unknown_avatar"))

# --- Bad LiveKit URLs ---------------------------------------------------------------------------------
for i, url in enumerate(["file:///etc/passwd", "ftp://livekit:21", "gopher://livekit:70/", "javascript:alert(1)",
                         "data:text/plain,hello", "ws://", "wss://", "http://", "://livekit:7880",
                         "livekit:7880", "//livekit:7880", "ws://livekit:99999", "ws://[::1", "ws://a b:7880",
                         "unix:///var/run/livekit.sock", "ldap://livekit", "dict://127.0.0.1:11211/",
                         "tcp://livekit:7880", "wss://%zz", "mailto:a@b", "ws://exa mple.com"]):
    case(f"livekit-url-{i:02}", f"livekit_url {url!r}", base(livekit_url=url))

# --- Bad tokens ---------------------------------------------------------------------------------------
bad_tokens = {
    "not-jwt": "not-a-jwt", "two-parts": "a.b", "four-parts": "a.b.c.d", "bad-base64": "a.!!!.c",
    "payload-not-json": jwt(b"not json"),
    "payload-array": jwt(b"[1,2]"),
    "no-sub": jwt(b'{"name":"x","video":{"room":"corpus"}}'),
    "empty-sub": jwt(b'{"sub":"","video":{"room":"corpus"}}'),
    "numeric-sub": jwt(b'{"sub":5,"video":{"room":"corpus"}}'),
    "null-sub": jwt(b'{"sub":null}'),
    "no-signature": jwt(b'{"sub":"a","video":{"room":"corpus"}}', sig=""),
    "no-header": "." + jwt(b'{"sub":"a"}').split(".", 1)[1],
    "padding-in-header": "eyJhbGciOiJIUzI1NiJ9==" + jwt(b'{"sub":"a"}')[len("eyJhbGciOiJIUzI1NiJ9"):],
    "percent-in-header": "eyJhbGci%4FiJIUzI1NiJ9" + jwt(b'{"sub":"a"}')[len("eyJhbGciOiJIUzI1NiJ9"):],
    "dots": "...", "empty-parts": "..x", "bearer-prefix": "Bearer {{token}}",
    "space-inside": "eyJhbGciOiJIUzI1NiJ9 .e30.c2ln",
    "payload-deep": jwt(b"[" * 200),
}
for name, value in bad_tokens.items():
    case(f"token-{name}", f"livekit_token {name}", base(livekit_token=value), (400, "invalid_token"))
case("token-other-room", "a token for another room", base(livekit_token="{{token:elsewhere}}"),
     (400, "invalid_token"), detail="not room_name")
case("token-unicode", "a token with an RTL override", base(livekit_token="a.\u202e.c"))

# --- Portraits (base64 in JSON `image`) ---------------------------------------------------------------
images_invalid = {
    "one-byte": b64(b"x"),
    "text": b64(b"hello, world"),
    "nul-bytes": b64(b"\0" * 100),
    "gif": "{{image:gif}}", "bmp": "{{image:bmp}}", "tiff-le": "{{image:tiff_le}}", "tiff-be": "{{image:tiff_be}}",
    "svg": "{{image:svg}}", "heic": "{{image:heic}}", "avif": "{{image:avif}}", "ico": "{{image:ico}}",
    "psd": "{{image:psd}}", "pdf": "{{image:pdf}}", "html": "{{image:html}}", "elf": "{{image:elf}}",
    "zip": "{{image:zip}}", "gzip-png": "{{image:gzip_png}}", "jpeg-xl": "{{image:jxl}}", "qoi": "{{image:qoi}}",
    "png-magic-only": "{{image:png_magic}}", "jpeg-soi-only": "{{image:jpeg_soi}}",
    "webp-riff-only": "{{image:webp_riff}}",
    "png-truncated-10": "{{image:png_truncated_10}}", "png-truncated-50": "{{image:png_truncated_50}}",
    "png-truncated-90": "{{image:png_truncated_90}}", "png-bad-crc": "{{image:png_bad_crc}}",
    "png-garbage-idat": "{{image:png_garbage_idat}}",
    "jpeg-truncated-10": "{{image:jpeg_truncated_10}}", "jpeg-truncated-50": "{{image:jpeg_truncated_50}}",
    "jpeg-truncated-90": "{{image:jpeg_truncated_90}}", "jpeg-truncated-99": "{{image:jpeg_truncated_99}}",
    "webp-truncated-50": "{{image:webp_truncated_50}}", "webp-truncated-90": "{{image:webp_truncated_90}}",
    "png-bomb-100000": "{{image:png_bomb_100000}}", "png-bomb-5001x5000": "{{image:png_bomb_5001x5000}}",
    "png-bomb-max": "{{image:png_bomb_max}}", "png-zero-width": "{{image:png_zero_width}}",
    "jpeg-bomb-65500": "{{image:jpeg_bomb_65500}}", "webp-bomb-16384": "{{image:webp_bomb_16384}}",
    "png-noise-magic": "{{image:png_noise_magic}}", "jpeg-noise-magic": "{{image:jpeg_noise_magic}}",
}
for name, value in images_invalid.items():
    case(f"image-{name}", f"portrait: {name}", base(image=value), (400, "invalid_image"))
# Damaged in the middle: a tolerant decoder may still produce pixels, but never a face.
for name in ["png_flipped", "jpeg_flipped", "jpeg_zeroed_scan"]:
    case(f"image-{name.replace('_', '-')}", f"portrait: {name} (damaged mid-file)",
         base(image="{{image:%s}}" % name), (400, ["invalid_image", "no_face"]))
no_face = ["png_flat_256", "png_noise_256", "jpeg_flat_256", "jpeg_gradient_320x240", "webp_flat_256",
           "png_gray_256", "png_rgba_256"]
# Too small (or too thin) to hold a face: the worker refuses these as images, before looking for a face.
for name in ["png_1x1", "png_wide_4000x8", "png_tall_8x4000"]:
    case(f"small-{name.replace('_', '-')}", f"portrait too small for a face: {name}",
         base(image="{{image:%s}}" % name), (400, "invalid_image"), detail="pixels")
for name in no_face:
    case(f"noface-{name.replace('_', '-')}", f"portrait without a face: {name}",
         base(image="{{image:%s}}" % name), (400, "no_face"))
case("noface-data-uri", "a data URI of an image without a face",
     base(image="data:image/png;base64,{{image:png_flat_256}}"), (400, "no_face"))

# --- Bad base64 ---------------------------------------------------------------------------------------
bad_b64 = {
    "percent": "%%%", "symbols": "!!!!", "space-only": "   ", "mixed-alphabets": "ab+c-d_e/f==",
    "nul-inside": "aGVs\u0000bG8=", "too-much-padding": "aGVsbG8====", "one-char": "a",
    "unicode": "\u00e9\u00e9\u00e9\u00e9", "data-uri-not-base64": "data:image/png,abc",
    "data-uri-bad-payload": "data:image/png;base64,!!!", "data-uri-empty": "data:image/png;base64,",
    "huge-garbage": "{{repeat:2000000:*}}",
}
for name, value in bad_b64.items():
    case(f"base64-{name}", f"image: bad base64 ({name})", base(image=value))
case("base64-nopad-text", "base64 without padding of a non-image", base(image="aGVsbG8"), (400, "invalid_image"))

# --- SSRF: portrait URLs ------------------------------------------------------------------------------
ssrf = [
    "http://127.0.0.1/face.jpg", "http://127.0.0.1:8089/health", "http://127.1/", "http://127.255.255.254/",
    "http://0.0.0.0/", "http://0/", "http://localhost/", "http://localhost:8089/tasks",
    "http://LOCALHOST/", "http://localhost./", "http://10.0.0.1/", "http://10.77.0.1/", "http://172.16.0.1/",
    "http://172.31.255.254/", "http://192.168.0.1/", "http://192.168.255.255/", "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/computeMetadata/v1/", "http://169.254.170.2/v2/credentials", "http://100.64.0.1/",
    "http://100.100.100.200/latest/meta-data/", "http://224.0.0.1/", "http://239.255.255.250:1900/",
    "http://255.255.255.255/", "http://240.0.0.1/", "http://198.18.0.1/", "http://[::1]/", "http://[::]/",
    "http://[0:0:0:0:0:0:0:1]/", "http://[fc00::1]/", "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[fe80::1]/", "http://[ff02::1]/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/",
    "http://[::ffff:169.254.169.254]/", "http://[::ffff:10.0.0.1]/", "http://[::127.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/", "http://[2002:7f00:1::1]/", "http://2130706433/", "http://0x7f000001/",
    "http://0177.0.0.1/", "http://0x7f.0x0.0x0.0x1/", "http://017700000001/", "http://3232235521/",
    "http://0xa9fea9fe/", "http://user:pass@127.0.0.1/", "http://evil.example.com@127.0.0.1/",
    "http://127.0.0.1#@evil.example.com/", "http://127.0.0.1:80@evil.example.com/", "https://127.0.0.1/",
    "https://[::1]:8443/", "http://127.0.0.1:22/", "http://127.0.0.1:6379/", "HTTP://127.0.0.1/",
    "http://[fe80::1%25lo]/", "http://%31%32%37.0.0.1/", "http://127.0.0.1\t/", "http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/",
]
for i, url in enumerate(ssrf):
    case(f"ssrf-json-{i:02}", f"portrait URL {url!r}", base(image=url), (400, "image_fetch_failed"))
for i, url in enumerate(["http://127.0.0.1/", "http://169.254.169.254/latest/meta-data/", "http://[::1]/",
                         "http://[::ffff:127.0.0.1]/", "http://2130706433/", "http://localhost/",
                         "http://10.0.0.1/", "http://100.64.0.1/"]):
    case(f"ssrf-form-{i:02}", f"form avatar_image_url {url!r}",
         form(*valid_form_parts(avatar_image_url=url)), (400, "image_fetch_failed"))
for i, url in enumerate(["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://127.0.0.1/x.jpg",
                         "dict://127.0.0.1:11211/stat", "ldap://127.0.0.1/", "jar:http://127.0.0.1!/",
                         "tftp://127.0.0.1/x", "ws://127.0.0.1/x.jpg", "netdoc:///etc/passwd",
                         "file:/etc/passwd", "file://localhost/etc/passwd"]):
    case(f"scheme-{i:02}", f"portrait URL with scheme {url.split(':')[0]}", base(image=url))
# Names that do not resolve (and, on a networked host, names that point at private addresses).
for i, url in enumerate(["http://metadata.google.internal/computeMetadata/v1/", "http://metadata/",
                         "http://instance-data/latest/", "http://localtest.me/", "http://127.0.0.1.nip.io/",
                         "http://nonexistent.invalid/face.jpg"]):
    case(f"ssrf-name-{i:02}", f"portrait URL {url!r} (a name for a private address, or none)",
         base(image=url), (400, "image_fetch_failed"))

# --- Content types and multipart ----------------------------------------------------------------------
for i, ct in enumerate(["text/plain", "application/x-www-form-urlencoded", "application/xml", "text/json",
                        "multipart/mixed; boundary=x", "image/jpeg", "application/octet-stream", "",
                        "json", "application/javascript"]):
    case(f"ctype-{i:02}", f"content type {ct!r}", base(), (415, "unsupported_media_type"), content_type=ct)
case("ctype-none", "no content type at all", {"text": "{}"}, (415, "unsupported_media_type"), content_type="none")
mp_raw = {
    "no-boundary": ("multipart/form-data", "--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n"),
    "empty-boundary": ("multipart/form-data; boundary=", "--\r\n\r\n"),
    "wrong-boundary": ("multipart/form-data; boundary=abc",
                       "--xyz\r\nContent-Disposition: form-data; name=\"room_name\"\r\n\r\nr\r\n--xyz--\r\n"),
    "no-closing": ("multipart/form-data; boundary=abc",
                   "--abc\r\nContent-Disposition: form-data; name=\"room_name\"\r\n\r\nr"),
    "no-headers-end": ("multipart/form-data; boundary=abc",
                       "--abc\r\nContent-Disposition: form-data; name=\"room_name\"\r\nr\r\n--abc--\r\n"),
    "garbage": ("multipart/form-data; boundary=abc", "this is not multipart at all"),
    "empty-body": ("multipart/form-data; boundary=abc", ""),
    "header-no-colon": ("multipart/form-data; boundary=abc",
                        "--abc\r\nContent-Disposition form-data\r\n\r\nr\r\n--abc--\r\n"),
    "bare-lf": ("multipart/form-data; boundary=abc",
                "--abc\nContent-Disposition: form-data; name=\"room_name\"\n\nr\n--abc--\n"),
    "boundary-too-long": ("multipart/form-data; boundary=" + "b" * 300,
                          "--" + "b" * 300 + "\r\n\r\nx\r\n--" + "b" * 300 + "--\r\n"),
}
for name, (ct, body) in mp_raw.items():
    case(f"multipart-{name}", f"malformed multipart: {name}", {"text": body}, (400, ["invalid_multipart", "invalid_request"]),
         content_type=ct)
case("multipart-empty-form", "a multipart form with no fields", form(), (400, "invalid_request"),
     detail="is required")
case("multipart-duplicate-room", "room_name given twice",
     form(*valid_form_parts(), text_part("room_name", "other")), (400, "invalid_request"), detail="more than once")
case("multipart-two-portraits", "both avatar_image and avatar_image_url",
     form(*valid_form_parts(), {"name": "avatar_image", "filename": "a.png", "gen": "png_flat_256"},
          text_part("avatar_image_url", "http://example.com/a.jpg")), (400, "invalid_request"))
case("multipart-empty-image", "an empty avatar_image file",
     form(*valid_form_parts(), {"name": "avatar_image", "filename": "a.jpg", "base64": ""}), (400, "invalid_image"))
case("multipart-no-name", "a part without a name (then the fields are missing)",
     form({"raw_headers": "Content-Disposition: form-data", "text": "x"}), (400, "invalid_request"))
for name in ["gif", "svg", "heic", "png_truncated_50", "png_bomb_100000", "jpeg_bomb_65500", "html"]:
    case(f"multipart-image-{name.replace('_', '-')}", f"avatar_image file: {name}",
         form(*valid_form_parts(), {"name": "avatar_image", "filename": "avatar.jpg", "content_type": "image/jpeg",
                                    "gen": name}), (400, "invalid_image"))
for name in ["png_flat_256", "jpeg_flat_256"]:
    case(f"multipart-noface-{name.replace('_', '-')}", f"avatar_image file without a face: {name}",
         form(*valid_form_parts(), {"name": "avatar_image", "filename": "avatar.png", "gen": name}), (400, "no_face"))
for name, value in {"invalid-utf8": "fffe72", "overlong": "c0af", "surrogate": "eda080", "truncated": "72e282",
                    "above-max": "f4908080"}.items():
    case(f"multipart-room-{name}", f"form room_name with {name} bytes",
         form(*valid_form_parts(room_name=None), {"name": "room_name", "hex": value}),
         (400, "invalid_request"), detail="UTF-8")
for name in ["nul", "rtl-override", "cr-lf", "escape"]:
    case(f"multipart-unicode-{name}", f"form room_name with {name}", form(*valid_form_parts(room_name=odd[name])))
case("multipart-async-maybe", "form async_mode=maybe", form(*valid_form_parts(async_mode="maybe")))
case("multipart-bad-url", "form livekit_url file:///etc/passwd",
     form(*valid_form_parts(livekit_url="file:///etc/passwd")))
case("multipart-bad-token", "form livekit_token not a JWT", form(*valid_form_parts(livekit_token="nope")),
     (400, "invalid_token"))
case("multipart-long-room", "form room_name 10000 characters",
     form(*valid_form_parts(room_name="{{repeat:10000:r}}")), detail="longer than")
case("multipart-bad-base64", "form avatar_image_url that is neither URL nor base64",
     form(*valid_form_parts(avatar_image_url="%%%")))
case("multipart-many-unknown", "10000 unknown fields and no room_name", {"gen": "multipart_many_fields", "n": 10000},
     (400, "invalid_request"), content_type="multipart/form-data; boundary=lipcastcorpus")
case("multipart-huge-header", "a part header of 100 kB", {"gen": "multipart_huge_header", "n": 100000},
     (400, ["invalid_multipart", "invalid_request"]), content_type="multipart/form-data; boundary=lipcastcorpus")
case("multipart-11mb", "an 11 MB avatar_image (limit 10 MB)", {"gen": "multipart_big_file", "n": 11 * 1024 * 1024},
     (413, "too_large"), content_type="multipart/form-data; boundary=lipcastcorpus")

# --- Authentication -----------------------------------------------------------------------------------
auth_headers = {
    "none": {}, "wrong": {"api-secret": "wrong"}, "empty": {"api-secret": ""},
    "prefix": {"api-secret": "{{secret_prefix}}"}, "longer": {"api-secret": "{{secret}}x"},
    "case": {"api-secret": "{{secret_upper}}"}, "bearer-wrong": {"authorization": "Bearer wrong"},
    "bearer-no-space": {"authorization": "Bearer{{secret}}"}, "basic": {"authorization": "Basic {{secret}}"},
    "token-scheme": {"authorization": "Token {{secret}}"}, "lowercase-bearer": {"authorization": "bearer {{secret}}"},
    "huge": {"api-secret": "{{repeat:8000:s}}"}, "wrong-header-name": {"x-api-key": "{{secret}}"},
    "query-not-accepted": {},
    "right-and-wrong": {"api-secret": "wrong", "authorization": "Bearer {{secret}}"},
}
for name, headers in auth_headers.items():
    path = "/launch?api_secret={{secret}}" if name == "query-not-accepted" else "/launch"
    case(f"auth-launch-{name}", f"/launch with auth {name}", base(), (401, "unauthorized"), headers=headers,
         auth=False, path=path)
case("auth-json-field-wrong", "JSON api_secret field wrong", base(api_secret="wrong"), (401, "unauthorized"),
     auth=False)
case("auth-form-field-wrong", "form api_secret field wrong", form(*valid_form_parts(api_secret="wrong")),
     (401, "unauthorized"), auth=False)
case("auth-form-field-empty", "form api_secret field empty", form(*valid_form_parts(api_secret="")),
     (401, "unauthorized"), auth=False)
case("auth-form-field-late-wrong", "form with a wrong api_secret and a bad body",
     form(text_part("api_secret", "wrong")), (401, "unauthorized"), auth=False)
for method, path in [("GET", "/tasks"), ("GET", "/tasks/000000000000"), ("POST", "/tasks/000000000000/stop"),
                     ("POST", "/benchmark"), ("GET", "/test-frame")]:
    for name, headers in [("none", {}), ("wrong", {"api-secret": "wrong"}),
                          ("bearer-wrong", {"authorization": "Bearer nope"})]:
        case(f"auth-{method.lower()}{path.replace('/', '-')}-{name}", f"{method} {path} with auth {name}",
             None, (401, "unauthorized"), method=method, path=path, headers=headers, auth=False)

# --- Other routes -------------------------------------------------------------------------------------
for i, p in enumerate(["/", "/launch/", "/tasks/", "/admin", "/.env", "/../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                       "/metrics/x", "/launch%00", "/{{repeat:5000:a}}"]):
    case(f"route-{i:02}", f"unknown route {p[:40]!r}", None, (404, "not_found"), method="GET", path=p)
for i, (m, p) in enumerate([("GET", "/launch"), ("PUT", "/launch"), ("DELETE", "/launch"), ("PATCH", "/tasks"),
                            ("DELETE", "/tasks/000000000000"), ("GET", "/tasks/000000000000/stop"),
                            ("GET", "/benchmark"), ("POST", "/health"), ("POST", "/ready"), ("PUT", "/metrics")]):
    case(f"method-{i:02}", f"{m} {p}", None, (405, "method_not_allowed"), method=m, path=p)
for i, tid in enumerate(["000000000000", "nope", "..", "%2e%2e", "{{repeat:10000:f}}", "%00", "%FF%FE",
                         "\u202eabc", "x';DROP TABLE tasks;--", "%C0%AF"]):
    case(f"task-get-{i:02}", f"GET /tasks/{tid[:20]!r}", None, (404, "not_found"), method="GET",
         path="/tasks/" + tid)
    case(f"task-stop-{i:02}", f"POST /tasks/{tid[:20]!r}/stop", None, (404, "not_found"),
         path="/tasks/" + tid + "/stop")
for i, q in enumerate(["0", "-1", "abc", "1.5", "1e3", "2001", "99999999999999999999", "%FF", "0x10",
                       "%00", "+-1", "abc&iterations=5"]):
    expect = (400, "invalid_request")
    case(f"benchmark-{i:02}", f"/benchmark?iterations={q}", None, expect, path="/benchmark?iterations=" + q)
for i, q in enumerate(["maybe", "2", "tru", "%FF", "yes please"]):
    case(f"query-async-{i:02}", f"/launch?async={q}", base(), path="/launch?async=" + q)

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "requests.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        for c in CASES:
            f.write(json.dumps(c, ensure_ascii=True, sort_keys=True) + "\n")
    print(f"{len(CASES)} cases -> {out}")
