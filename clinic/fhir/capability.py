"""The CapabilityStatement at `/fhir/metadata`: built from what `clinic.fhir.api` really serves."""

from __future__ import annotations

from datetime import datetime

from fhir.resources.capabilitystatement import CapabilityStatement

from clinic.fhir import api
from clinic.fhir.resources import FHIR_VERSION

_TYPES = {"start": "date", "date": "date", "birthdate": "date", "issued": "date", "_id": "token", "identifier": "token",
          "status": "token", "service-type": "token", "active": "token", "family": "string", "given": "string",
          "name": "string"}
_WRITES = {"Appointment": [{"code": "create"}, {"code": "update"}, {"code": "patch"}],
           "DiagnosticReport": [{"code": "create"}]}  # a lab result with its PDF (clinic.fhir.reports)


def capability_statement(base_url: str) -> dict:
    token_url = base_url.removesuffix("/fhir") + "/oauth2/token"
    kinds = api._kinds(datetime.now().astimezone())
    data = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-26",
        "kind": "instance",
        "software": {"name": "clinic-assistant"},
        "implementation": {"description": "Clinic assistant scheduling API", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": False,
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": [{"url": "token", "valueUri": token_url}],
                }],
                "service": [{"text": "OAuth2 client credentials at the token URL, or the API key as a bearer token"}],
                "description": "Per-system API keys from `clinic fhir add-client` (client id: its name).",
            },
            "resource": [
                {
                    "type": name,
                    "interaction": [{"code": "read"}, {"code": "search-type"}, *_WRITES.get(name, [])],
                    "updateCreate": False,
                    "searchParam": [{"name": param, "type": _TYPES.get(param, "reference")}
                                    for param in sorted(kind.filters)],
                }
                for name, kind in kinds.items()
            ],
        }],
    }
    CapabilityStatement.parse_obj(data)
    return data
