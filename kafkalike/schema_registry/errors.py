"""Confluent Schema Registry's REST errors: an HTTP status plus a JSON body
``{"error_code": 40401, "message": "Subject 'x' not found."}``.

Codes and message texts follow Confluent's ``rest/exceptions/Errors.java`` (Schema Registry
7.x): 404xx not found, 409 incompatible schema (HTTP 409, error_code 409), 422xx invalid input,
500xx store errors. ``RestError`` is raised by the registry's operations and turned into a
response by the web app.
"""

from __future__ import annotations

import attrs

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_SOFT_DELETED = 40404
SUBJECT_NOT_SOFT_DELETED = 40405
SCHEMAVERSION_SOFT_DELETED = 40406
SCHEMAVERSION_NOT_SOFT_DELETED = 40407
SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED = 40408
INCOMPATIBLE_SCHEMA = 409
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_COMPATIBILITY_LEVEL = 42203
INVALID_MODE = 42204
STORE_ERROR = 50001
OPERATION_TIMEOUT = 50002


@attrs.frozen
class RestError(Exception):
    """An error answer: ``http_status`` (404, 409, 422, 500, ...), Confluent's
    ``error_code`` and ``message``."""

    http_status: int
    error_code: int
    message: str

    def __str__(self) -> str:
        return f"{self.http_status} {self.error_code}: {self.message}"

    def body(self) -> dict[str, object]:
        """The JSON body Confluent sends: {"error_code": N, "message": "..."}."""
        return {"error_code": self.error_code, "message": self.message}


def subject_not_found(subject: str) -> RestError:
    return RestError(404, SUBJECT_NOT_FOUND, f"Subject '{subject}' not found.")


def version_not_found(version: int | str) -> RestError:
    return RestError(404, VERSION_NOT_FOUND, f"Version {version} not found.")


def schema_not_found(schema_id: int | None = None) -> RestError:
    return RestError(404, SCHEMA_NOT_FOUND,
                     "Schema not found" if schema_id is None else f"Schema {schema_id} not found")


def subject_soft_deleted(subject: str) -> RestError:
    return RestError(404, SUBJECT_SOFT_DELETED,
                     f"Subject '{subject}' was soft deleted.Set permanent=true to delete permanently")


def subject_not_soft_deleted(subject: str) -> RestError:
    return RestError(404, SUBJECT_NOT_SOFT_DELETED,
                     f"Subject '{subject}' was not deleted first before being permanently deleted")


def version_soft_deleted(subject: str, version: int) -> RestError:
    return RestError(404, SCHEMAVERSION_SOFT_DELETED,
                     f"Subject '{subject}' Version {version} was soft deleted.Set permanent=true to delete permanently")


def version_not_soft_deleted(subject: str, version: int) -> RestError:
    return RestError(404, SCHEMAVERSION_NOT_SOFT_DELETED,
                     f"Subject '{subject}' Version {version} was not deleted first before being permanently deleted")


def subject_compatibility_not_configured(subject: str) -> RestError:
    return RestError(404, SUBJECT_LEVEL_COMPATIBILITY_NOT_CONFIGURED,
                     f"Subject '{subject}' does not have subject-level compatibility configured")


def incompatible_schema(message: str) -> RestError:
    return RestError(409, INCOMPATIBLE_SCHEMA, message)


def invalid_schema(message: str) -> RestError:
    return RestError(422, INVALID_SCHEMA, message)


def invalid_version(version: str) -> RestError:
    return RestError(422, INVALID_VERSION,
                     f"The specified version '{version}' is not a valid version id. Allowed values are between "
                     "[1, 2^31-1] and the string \"latest\"")


def invalid_compatibility_level() -> RestError:
    return RestError(422, INVALID_COMPATIBILITY_LEVEL,
                     "Invalid compatibility level. Valid values are none, backward, forward, full, "
                     "backward_transitive, forward_transitive, and full_transitive")


def store_error(message: str) -> RestError:
    return RestError(500, STORE_ERROR, message)


def operation_timeout(message: str) -> RestError:
    return RestError(500, OPERATION_TIMEOUT, message)
