"""Jinja2 filters for rendering dify-cfg's templates with Kapitan.

Kapitan loads this file with `--jinja2-filters`: every function defined here
becomes a filter under its own name. It ports what dify-cfg's minijinja
environment (compiler/render.rs) adds to the Jinja language:

- the filters `toyaml`, `comment`, `dotenv` and `quote`, byte for byte;
- the formatter: in templates whose name ends in `.yaml`/`.yml` every
  `{{ }}` prints JSON (with YAML's extra line breaks escaped), in `.sh`
  templates every `{{ }}` prints one single-quoted sh word, elsewhere
  values print as minijinja prints them (`true`, `none`). Values a filter
  marked safe print as they are.

Kapitan offers no hook for the formatter, so this module installs it as the
environment's `finalize` (a Jinja2 feature) by wrapping
`jinja2.Environment.get_template` once per process: Kapitan creates a fresh
environment for every template file, loads this module into it, then asks
for the template, which is compiled with the finalizer in place. The
environment is otherwise Kapitan's own (StrictUndefined, trim_blocks,
lstrip_blocks; keep_trailing_newline is off, so Kapitan's files lack the
final newline dify-cfg writes).
"""

import json

import jinja2
from markupsafe import Markup

# ---------------------------------------------------------------------------
# Escaping, as compiler/render.rs does it


def _yaml_plain_char(c):
    o = ord(c)
    if c in "\u2028\u2029\ufeff":
        return False
    return (
        c in "\t\n\r"
        or 0x20 <= o <= 0x7E
        or 0xA0 <= o <= 0xD7FF
        or 0xE000 <= o <= 0xFFFD
        or o >= 0x10000
    )


def _yaml_safe(text):
    out = []
    for c in text:
        if _yaml_plain_char(c):
            out.append(c)
        else:
            data = c.encode("utf-16-be")
            for i in range(0, len(data), 2):
                out.append("\\u%04x" % int.from_bytes(data[i : i + 2], "big"))
    return "".join(out)


def _json_string(s):
    return _yaml_safe(json.dumps(s, ensure_ascii=False))


def _scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        return _json_string(str(v))
    if isinstance(v, (list, tuple)):
        return "[]"
    if isinstance(v, dict):
        return "{}"
    return _json_string(str(v))


def _json_inline(v):
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_json_inline(x) for x in v) + "]"
    if isinstance(v, dict):
        return (
            "{"
            + ", ".join(
                "%s: %s" % (_json_string(k), _json_inline(x))
                for k, x in sorted(v.items())
            )
            + "}"
        )
    return _scalar(v)


_SPECIAL_KEYS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def _key(k):
    plain = (
        k[:1].isascii()
        and (k[:1].isalpha() or k[:1] == "_")
        and all((c.isascii() and c.isalnum()) or c in "_-." for c in k)
        and k.lower() not in _SPECIAL_KEYS
    )
    return k if plain else _json_string(k)


def _write_map(out, m, level, inline):
    for i, (k, v) in enumerate(sorted(m.items())):
        if not (inline and i == 0):
            out.append(" " * level)
        out.append(_key(k))
        out.append(":")
        _write_child(out, v, level + 2, False)


def _write_seq(out, items, level):
    for item in items:
        out.append(" " * level)
        out.append("-")
        _write_child(out, item, level + 2, True)


def _write_child(out, v, level, after_dash):
    if isinstance(v, dict) and v:
        out.append(" " if after_dash else "\n")
        _write_map(out, v, level, after_dash)
    elif isinstance(v, (list, tuple)) and v:
        out.append("\n")
        _write_seq(out, v, level)
    else:
        out.append(" ")
        out.append(_scalar(v))
        out.append("\n")


def _to_yaml(v):
    out = []
    if isinstance(v, dict) and v:
        _write_map(out, v, 0, False)
    elif isinstance(v, (list, tuple)) and v:
        _write_seq(out, v, 0)
    else:
        out.append(_scalar(v))
    return "".join(out).rstrip("\n")


def _mj_display(v):
    """A value as minijinja prints it outside any auto-escape."""
    if v is None:
        return "none"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_mj_repr(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (_mj_repr(k), _mj_repr(x)) for k, x in v.items()) + "}"
    return str(v)


def _mj_repr(v):
    if isinstance(v, str):
        return json.dumps(str(v), ensure_ascii=False)
    return _mj_display(v)


def _sh_quote(s):
    if "\0" in s:
        raise jinja2.TemplateRuntimeError("a value with a NUL byte cannot be a shell word")
    return "'" + s.replace("'", "'\\''") + "'"


@jinja2.pass_context
def _finalize(ctx, value):
    if isinstance(value, Markup):
        return value
    name = ctx.name or ""
    if name.endswith(".yaml") or name.endswith(".yml"):
        return _json_inline(value)
    if name.endswith(".sh"):
        if isinstance(value, str):
            return _sh_quote(str(value))
        if isinstance(value, (bool, int, float)):
            return _sh_quote(_mj_display(value))
        raise jinja2.TemplateRuntimeError(
            "a %s cannot be printed as a shell word" % type(value).__name__
        )
    return _mj_display(value)


# Install the finalizer once per process (this file is executed again for
# every template Kapitan renders).
if not getattr(jinja2.Environment, "_dify_cfg_finalize", False):
    _get_template = jinja2.Environment.get_template

    def _get_template_with_finalize(self, *args, **kwargs):
        if self.finalize is None:
            self.finalize = _finalize
        return _get_template(self, *args, **kwargs)

    jinja2.Environment.get_template = _get_template_with_finalize
    jinja2.Environment._dify_cfg_finalize = True


# ---------------------------------------------------------------------------
# The filters (public names: Kapitan registers every function of this file;
# the helpers above start with `_` and are registered too, harmlessly).


def toyaml(value):
    """`{{ x|toyaml }}`: block-style YAML, every scalar JSON-escaped."""
    return Markup(_to_yaml(value))


def comment(value):
    """`{{ x|comment }}`: text for a one-line comment."""
    text = value if isinstance(value, str) else _mj_display(value)
    return Markup(
        "".join(
            " " if (c in "\u2028\u2029" or _is_control(c)) else c for c in str(text)
        )
    )


def _is_control(c):
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def _dotenv_representable(value):
    return "'" not in value and not value.endswith("\\") and not any(_is_control(c) for c in value)


def dotenv(value):
    """`{{ x|dotenv }}`: a value single-quoted for a compose env file."""
    value = str(value)
    if not _dotenv_representable(value):
        raise jinja2.TemplateRuntimeError(
            "a value with a quote, a control character or a trailing backslash cannot be written in an env file"
        )
    return Markup("'" + value + "'")


def quote(value):
    """`{{ x|quote }}`: a JSON string."""
    return Markup(_json_string(str(value)))
