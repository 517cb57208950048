"""The Go-template subset behind --format, checked against what Go's text/template prints."""

from __future__ import annotations

import pytest

from imagetool.errors import UsageError
from imagetool.gotemplate import render
from imagetool.govalues import GoTime, Struct

DATA = {"Name": "", "Labels": {"b": "2", "a": "1"}, "Layers": ["x", "y"], "Env": ["A=1"], "Size": 42,
        "Created": GoTime("2024-01-02T03:04:05Z"), "Empty": []}


@pytest.mark.parametrize("template,expect", [
    ("{{.Labels}}", "map[a:1 b:2]"),
    ("{{json .Env}}", '["A=1"]'),
    ("{{json .Labels}}", '{"a":"1","b":"2"}'),  # Go's encoding/json sorts map keys
    ("{{.Created}}", "2024-01-02 03:04:05 +0000 UTC"),
    ("{{index .Labels \"a\"}}{{index .Labels \"zz\"}}|{{.Labels.zz}}", "1|<no value>"),
    ("{{range $k, $v := .Labels}}{{$k}}{{$v}}{{end}}", "a1b2"),
    ("{{range $v := .Layers}}{{$v}}{{end}}", "xy"),
    ("{{range .Empty}}x{{else}}none{{end}}", "none"),
    ("{{range .Layers}}{{$.Size}}{{end}}", "4242"),
    ("{{with .Name}}named{{else}}anonymous{{end}}", "anonymous"),
    ("{{if gt .Size 40}}big{{else if gt .Size 10}}mid{{else}}small{{end}}", "big"),
    ("{{if ne .Size 42}}a{{else if eq .Size 1 42}}b{{end}}", "b"),
    ("{{.Size | printf \"%05d\"}} {{printf \"%q %v %x\" .Name .Layers 255}}", '00042 "" [x y] ff'),
    ("{{len .Layers | printf \"%d layers\"}}", "2 layers"),
    ("{{- \"a\" }}  \n  {{- \"b\" -}}  c", "abc"),
    ("{{or .Name \"none\"}} {{and .Size .Name}}|{{not .Empty}}", "none |true"),
    ("{{$n := len .Env}}{{println $n .Labels.a}}", "1 1\n"),
    ("{{/* comment */}}ok", "ok"),
])
def test_render(template: str, expect: str) -> None:
    assert render(template, DATA) == expect


def test_json_keeps_struct_fields_in_order_and_sorts_maps() -> None:
    data = Struct({"Z": 1, "Maps": [{"y": 1, "x": {"q": 2, "p": 1}}], "A": Struct({"b": 1, "a": 2})})
    assert render("{{json .}}", data) == '{"Z":1,"Maps":[{"x":{"p":1,"q":2},"y":1}],"A":{"b":1,"a":2}}'


@pytest.mark.parametrize("template", ["{{range .Env}}", "{{end}}", "{{else}}", "{{nosuch .Env}}", "{{$x}}",
                                      "{{index .Layers 5}}", "{{.Size 3}}", "{{printf}}", "{{(len .Env}}"])
def test_bad_templates_raise_usage_errors(template: str) -> None:
    with pytest.raises(UsageError):
        render(template, DATA)


def test_a_struct_lacks_fields_a_map_does_not() -> None:
    data = Struct({"Name": "x", "Labels": {"a": "1"}})
    assert render("{{.Name}} {{.Labels.a}} {{.Labels.b}}", data) == "x 1 <no value>"
    with pytest.raises(UsageError, match="can't evaluate field Nope"):
        render("{{.Nope}}", data)
