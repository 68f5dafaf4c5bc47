"""Schemathesis against the API's own OpenAPI (``/api/openapi.json``), in process (ASGI, no network).

For every operation, schemathesis generates requests from the schema, valid
(positive) and invalid (negative), and runs its checks on each response: no
5xx, a documented status code and content type, a body that conforms to the
documented schema, invalid requests refused.

(schemathesis's own ``from_fixture``/``parametrize`` pytest plugin fails under
pytest 9 — it sets ``node._nodeid`` — so each operation's strategy is drawn here
with plain hypothesis.)
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from catalogue.server import create_app
from test_properties import build_small_catalogue

POSITIVE, NEGATIVE = GenerationMode.POSITIVE, GenerationMode.NEGATIVE

#: Every operation of the schema; test_every_operation_is_fuzzed keeps this list honest.
OPERATIONS = [("GET", "/api/search"), ("GET", "/api/formations/{ref}")]

#: A schema-valid search may still be refused for what it means (an unknown town in
#: ``near``, too many words): a documented 400, not a rejected valid request.
EXCLUDED = {"/api/search": [positive_data_acceptance]}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    build_dir, _refs = build_small_catalogue(tmp_path_factory.mktemp("schemathesis"))
    return schemathesis.openapi.from_asgi("/api/openapi.json", create_app(build_dir))


def test_every_operation_is_fuzzed(api_schema):
    found = [(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()]
    assert sorted(found) == sorted(OPERATIONS)


@pytest.mark.parametrize(
    "method, path, mode",
    [
        ("GET", "/api/search", POSITIVE),
        ("GET", "/api/search", NEGATIVE),
        ("GET", "/api/formations/{ref}", POSITIVE),
        # No negative case: the path parameter is any string, so nothing is schema-invalid.
    ],
    ids=str,
)
@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_api_conforms_to_its_openapi(api_schema, method, path, mode, data):
    case = data.draw(api_schema[path][method].as_strategy(generation_mode=mode), label="case")
    case.call_and_validate(excluded_checks=EXCLUDED.get(path, []))


@pytest.mark.parametrize(
    "query",
    [
        {"near": "searcher", "rayon_km": 308},  # found by the fuzz: an unknown town is a 400
        {"q": " ".join(["mot"] * 60)},  # too many words: a 400
    ],
)
def test_search_refusals_are_documented(api_schema, query):
    case = api_schema["/api/search"]["GET"].Case(query=query)
    response = case.call()
    assert response.status_code == 400
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


@pytest.mark.parametrize("ref", ["15_AF_0000000001", "15_AF_0000000005", "inconnue", "..", "a.b"])
def test_formation_responses_conform(api_schema, ref):
    case = api_schema["/api/formations/{ref}"]["GET"].Case(path_parameters={"ref": ref})
    response = case.call()
    assert response.status_code == (200 if ref.startswith("15_AF") else 404)
    case.validate_response(response)
