"""Integration with the clinic's other systems: a FHIR R4 API over the scheduling core (`api`,
`resources`, `capability`, served by `app`), its API clients (`clients`) and the calendar import
(`importer`). Run with `python -m clinic.fhir`.
"""
