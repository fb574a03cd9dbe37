"""Credentials never appear in error lines, logs (botocore's debug logs too) or summaries."""

import logging

import pytest

from alfine.redaction import RedactingFilter, redact
from alfine_tools.dispatch import main as alfine

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize("text, kept, gone", [
    ("http://user:pa55word@host/x.zarr/raw", "http://user:***@host/x.zarr/raw", "pa55word"),
    ("cannot open s3://k:s%2Fe@bucket/a", "s3://k:***@bucket/a", "s%2Fe"),
    ("Authorization: AWS4-HMAC-SHA256 Credential=AKIAX/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, "
     "Signature=0123abcd", "Authorization: ***", "0123abcd"),
    ("Credential=AKIAX/20260101/us-east-1/s3/aws4_request, Signature=0123abcd", "Signature=***", "AKIAX/"),
    ("GET /b/k?X-Amz-Credential=abc%2F1&X-Amz-Signature=ff00&X-Amz-Security-Token=tok", "X-Amz-Signature=***", "ff00"),
    (f"found key {KEY_ID}", "found key ***", KEY_ID),
    ("plain s3://bucket/data.zarr/raw and http://host/x", "plain s3://bucket/data.zarr/raw and http://host/x", "***"),
])
def test_redact(text, kept, gone):
    assert kept in redact(text) and gone not in redact(text)


def test_the_values_of_credential_variables_are_blanked(monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    assert redact(f"signing with {SECRET}!") == "signing with ***!"
    record = logging.LogRecord("botocore", logging.DEBUG, "x", 1, "secret %s", (SECRET,), None)
    assert RedactingFilter().filter(record) and record.getMessage() == "secret ***"


def test_a_password_in_a_url_is_not_printed(http_root, capsys, monkeypatch, tmp_path):
    _, base = http_root
    monkeypatch.chdir(tmp_path)
    url = base.replace("http://", "http://someone:pa55word@") + "/none.zarr/labels"
    code = alfine(["evaluate", "--truth", url, "--prediction", url, "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "someone:***@" in err and "pa55word" not in err, err


def test_botocore_debug_logs_show_no_credentials(s3_bucket, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    url = f"s3://{s3_bucket}/none.zarr/labels"
    code = alfine(["evaluate", "--truth", url, "--prediction", url, "--no-progress", "--debug"])
    err = capsys.readouterr().err
    assert code == 2 and "Signature=***" in err, err[-2000:]  # botocore's debug lines were there, blanked
    assert KEY_ID not in err and SECRET not in err
