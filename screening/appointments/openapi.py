"""The OpenAPI document of the appointments API, built from the same lists the booking's check uses."""

from __future__ import annotations

from .booking import AREAS, TREATMENTS


def document() -> dict:
    """Return the OpenAPI 3.0 document served at /api/v1/openapi.json."""
    date = {"type": "string", "format": "date", "example": "2027-01-15"}
    booking = {
        "type": "object",
        "additionalProperties": False,
        "required": ["external_id", "name", "date_of_birth", "date", "time", "treatment", "areas"],
        "properties": {
            "external_id": {
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
                "pattern": "^[A-Za-z0-9_:-][A-Za-z0-9._:-]*$",
                "description": "The booking system's own id for this appointment; a create with the same id and "
                "the same details answers 200 with the existing appointment.",
            },
            "name": {"type": "string", "minLength": 1, "maxLength": 120},
            "date_of_birth": {**date, "example": "1990-03-27", "description": "In the past."},
            "email": {
                "type": "string",
                "nullable": True,
                "maxLength": 254,
                "description": "The invitation is emailed here; empty, null or absent: no email is sent.",
            },
            "phone": {"type": "string", "nullable": True, "maxLength": 30},
            "date": {**date, "description": "Today or later, within two years."},
            "time": {"type": "string", "pattern": "^[0-9]{1,2}:[0-9]{2}$", "example": "14:30"},
            "treatment": {"type": "string", "enum": list(TREATMENTS)},
            "areas": {"type": "array", "minItems": 1, "items": {"type": "string", "enum": list(AREAS)}},
            "practitioner_email": {
                "type": "string",
                "nullable": True,
                "maxLength": 254,
                "description": "An active practitioner's email; null or absent: every practitioner is told.",
            },
        },
    }
    appointment = {
        "type": "object",
        "required": [
            "external_id",
            "name",
            "date_of_birth",
            "email",
            "phone",
            "date",
            "time",
            "treatment",
            "areas",
            "status",
        ],
        "properties": {
            **{k: v for k, v in booking["properties"].items() if k != "practitioner_email"},
            "status": {
                "type": "string",
                "enum": [
                    "cancelled",
                    "not_invited",
                    "not_delivered",
                    "invited",
                    "locked",
                    "opened",
                    "in_progress",
                    "screened",
                ],
                "description": "Where the screening stands; never its outcome.",
            },
        },
    }
    problem = {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "detail"],
                    "properties": {"field": {"type": "string"}, "detail": {"type": "string"}},
                },
            },
        },
    }

    def prob(desc):
        return {
            "description": desc,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }

    def ok(desc):
        return {
            "description": desc,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Appointment"}}},
        }

    common = {"401": prob("No token, or a revoked one"), "429": prob("Too many requests for this token")}
    param = [
        {
            "name": "external_id",
            "in": "path",
            "required": True,
            "schema": {
                "type": "string",
                "minLength": 1,
                "maxLength": 100,
                "pattern": "^[A-Za-z0-9_:-][A-Za-z0-9._:-]*$",
            },
        }
    ]
    body = {"required": True, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Booking"}}}}
    # A change names the appointment in the URL: external_id may be left out of the body (if there, the same).
    change = {**booking, "required": [r for r in booking["required"] if r != "external_id"]}
    change_body = {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Change"}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Screening: appointments API",
            "version": "1.0.0",
            "description": "Booking systems create, change and cancel appointments; each new appointment's client "
            "is emailed an invitation to the screening questionnaire. Authenticate with the integration's bearer "
            "token (flask --app wsgi screening api-token create NAME). Errors are RFC 9457 problem details.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/appointments": {
                "post": {
                    "operationId": "createAppointment",
                    "summary": "Create an appointment and send its invitation",
                    "requestBody": body,
                    "responses": {
                        "201": ok("Created"),
                        "200": ok("Already created with the same details (a replayed create)"),
                        "400": prob("Not JSON, or not an object"),
                        "409": prob("The external_id is booked with other details"),
                        "415": prob("Not application/json"),
                        "422": prob("A field is missing or wrong: errors names each"),
                        **common,
                    },
                }
            },
            "/api/v1/appointments/{external_id}": {
                "parameters": param,
                "get": {
                    "operationId": "readAppointment",
                    "summary": "Read an appointment",
                    "responses": {
                        "200": ok("The appointment"),
                        "404": prob("No appointment has this external_id"),
                        **common,
                    },
                },
                "put": {
                    "operationId": "updateAppointment",
                    "summary": "Replace an appointment's booking",
                    "requestBody": change_body,
                    "responses": {
                        "200": ok("Changed (or already so)"),
                        "400": prob("Not JSON, or not an object"),
                        "404": prob("No appointment has this external_id"),
                        "409": prob("The appointment is cancelled"),
                        "415": prob("Not application/json"),
                        "422": prob("A field is missing or wrong"),
                        **common,
                    },
                },
                "delete": {
                    "operationId": "cancelAppointment",
                    "summary": "Cancel an appointment (idempotent)",
                    "responses": {
                        "204": {"description": "Cancelled"},
                        "404": prob("No appointment has this external_id"),
                        **common,
                    },
                },
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {"Booking": booking, "Change": change, "Appointment": appointment, "Problem": problem},
        },
    }
