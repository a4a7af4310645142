"""Request validation and encoding of ``/v1/embeddings``: pure functions, no Ray needed."""

from __future__ import annotations

import numpy as np
import pytest

from embedrt.errors import InputError
from embedrt.integrations.serve import (
    Limits,
    ServeConfig,
    decode_base64,
    encode_vector,
    parse_request,
)

LIMITS = Limits(max_inputs=4, max_text_chars=10)


def parse(body):
    return parse_request(body, LIMITS, dim=32, model_names=("m",))


@pytest.mark.parametrize("body, param, match", [
    ({"input": []}, "input", "empty list"),
    ({"input": ["a", 3]}, "input", r"input\[1\]' is an int"),
    ({"input": ["a", None]}, "input", r"input\[1\]' is NoneType"),
    ({"input": [[1, 2]]}, "input", "token arrays are not supported"),
    ({"input": 5}, "input", "must be a string or a list"),
    ({"input": ["a"] * 5}, "input", "5 items; at most 4"),
    ({"input": ["x" * 11]}, "input", "11 characters; at most 10"),
    ({"input": "a", "encoding_format": "int8"}, "encoding_format", r"valid choices: \['float', 'base64'\]"),
    ({"input": "a", "dimensions": 0}, "dimensions", r"\[1, 32\]"),
    ({"input": "a", "dimensions": 33}, "dimensions", r"\[1, 32\]"),
    ({"input": "a", "model": "other"}, "model", r"serves \['m'\]"),
    ({}, "input", "'input' is required"),
    ([], None, "JSON object"),
])
def test_bad_requests_name_the_parameter(body, param, match):
    from embedrt.integrations.serve import RequestError

    with pytest.raises(RequestError, match=match) as err:
        parse(body)
    assert err.value.param == param
    assert err.value.body()["error"]["type"] == "invalid_request_error"


def test_good_requests():
    r = parse({"input": "hello", "model": "m"})
    assert (r.texts, r.encoding_format, r.dimensions) == (["hello"], "float", None)
    r = parse({"input": ["a", "b"], "encoding_format": "base64", "dimensions": 8})
    assert (r.texts, r.encoding_format, r.dimensions) == (["a", "b"], "base64", 8)


def test_base64_is_little_endian_float32_like_openai():
    v = np.array([1.0, -2.5, 3.25e-8], dtype=np.float32)
    s = encode_vector(v, "base64")
    assert np.array_equal(decode_base64(s), v)
    assert np.array_equal(np.frombuffer(__import__("base64").b64decode(s), dtype="<f4"), v)
    assert encode_vector(v, "float") == [float(x) for x in v]


def test_config_check_names_the_bad_value():
    with pytest.raises(InputError, match="max_batch_size must be a positive int"):
        ServeConfig(export_dir="x", model_name="m", max_batch_size=0).check()
    with pytest.raises(InputError, match="max_queued_requests"):
        ServeConfig(export_dir="x", model_name="m", max_queued_requests=0).check()


def test_missing_ray_gives_the_install_hint(monkeypatch):
    import builtins

    from embedrt.errors import MissingDependencyError
    from embedrt.integrations import require_ray

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(MissingDependencyError, match=r"pip install 'embedrt\[ray\]'"):
        require_ray()


def test_cli_does_not_import_ray_or_pyarrow():
    import subprocess
    import sys

    code = ("import sys, embedrt.cli; embedrt.cli.build_parser(); import embedrt.integrations.ray, "
            "embedrt.integrations.serve; bad = [m for m in ('ray', 'pyarrow', 'fastapi') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
