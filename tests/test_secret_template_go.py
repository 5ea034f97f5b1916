"""`secretTemplate.data` as db-provision-operator users write it (issue 17): its one-argument functions mean what
they meant there, and the placeholders dbops does not fill are refused with why."""

from __future__ import annotations

import re

import pytest

from function.secrets.template import TemplateError, render, renderings

VALUES = {
    "Username": "app user",
    "Password": "p@ss w/rd~",
    "Host": "db.example",
    "Port": "5432",
    "Database": "app",
    "SSLMode": "prefer",
    "Namespace": "team",
    "Name": "app-user",
    "CA": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
}


def test_the_go_functions_render_as_the_go_operator_renders_them() -> None:
    # Go: url.QueryEscape("p@ss w/rd~") == "p%40ss+w%2Frd~"; base64Encode is StdEncoding.
    text = "postgresql://{{ urlEncode .Username }}:{{ urlEncode .Password }}@{{ .Host }}:{{ .Port }}/{{ .Database }}"
    assert render(text, VALUES) == "postgresql://app+user:p%40ss+w%2Frd~@db.example:5432/app"
    assert render("{{ base64Encode .Name }}", VALUES) == "YXBwLXVzZXI="
    assert render("{{ upper .Namespace | quote }}", VALUES) == '"TEAM"'
    assert render("{{ .Password | urlEncode }}", VALUES) == "p%40ss+w%2Frd~"
    assert render("{{ .Password | urlquery }}", VALUES) == "p%40ss%20w%2Frd~"  # dbops' own pipe is unchanged


def test_the_ca_is_the_instances_ca_certificate() -> None:
    assert render("{{ .CA }}", VALUES) == VALUES["CA"]


def test_a_password_in_a_go_function_is_found_for_masking() -> None:
    assert renderings("{{ urlEncode .Password }}", "Password", "a b") == ["a+b"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{{ .TLSCert }}",
            "placeholder .TLSCert: the instance's client certificate authenticates dbops' admin",
        ),
        ("{{ .TLSKey | base64Encode }}", "placeholder .TLSKey: the instance's client key authenticates"),
        (
            "{{ exec .Password }}",
            "unknown function 'exec'; allowed: urlEncode, base64Encode, upper, lower, quote",
        ),
        ('{{ default "prefer" .SSLMode }}', "cannot read"),
        ("{{ urlPathEncode .Password }}", "unknown function 'urlPathEncode'"),
    ],
)
def test_what_dbops_does_not_fill_is_refused_with_why(text: str, message: str) -> None:
    with pytest.raises(TemplateError, match="^" + re.escape(message)):
        render(text, VALUES)
