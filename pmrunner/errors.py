"""The one error tree of pmrunner.

    PmrunnerError
    ├── InputError                  bad input from a user: files, options, settings
    │   ├── CollectionFormatError   a collection that cannot be read or understood
    │   ├── DataFileError           an environment, globals or iteration-data file
    │   └── ConfigurationError      bad settings, networks file or monitors file
    ├── SandboxError                the JavaScript sandbox could not run a script
    │   ├── ScriptTimeoutError      a script ran past its time limit
    │   └── ScriptMemoryError       a script went past its memory limit
    ├── RequestError                an HTTP exchange failed (connection, TLS, timeout)
    │   ├── ResponseTooLargeError   a body past the maximum response size (wire or decoded)
    │   ├── UnsupportedAuthError    an auth type this runner does not implement
    │   └── EgressBlockedError      the egress policy refused the host or address
    ├── StepTakenOver               a step resolved elsewhere (its worker taken for lost): not sent
    └── PostmanApiError             the Postman API answered with an error
        ├── PostmanAuthError        the API key was refused (401, 403)
        ├── PostmanNotFoundError    a monitor, collection or environment uid does not exist
        ├── PostmanRateLimitError   still rate limited (429) after the allowed retries
        ├── PostmanUnavailableError unreachable, timing out or failing (5xx) after retries
        └── PostmanResponseError    an answer this client cannot read (not JSON, wrong shape)

A request that fails inside a run never escapes as an exception: the runtime
turns it into a result. These errors are for the code around the run.
"""

from __future__ import annotations


class PmrunnerError(Exception):
    """Base class of every error pmrunner raises on purpose."""


class InputError(PmrunnerError):
    """Bad input from a user: a file, an option or a setting."""


class CollectionFormatError(InputError):
    """A collection file that cannot be read or is not a Postman collection."""


class DataFileError(InputError):
    """An environment, globals or iteration-data file that cannot be read."""


class ConfigurationError(InputError):
    """Bad settings, networks file or monitors file."""


class SandboxError(PmrunnerError):
    """The JavaScript sandbox could not run a script."""


class ScriptTimeoutError(SandboxError):
    """A script ran past its time limit."""


class ScriptMemoryError(SandboxError):
    """A script went past its memory limit."""


class RequestError(PmrunnerError):
    """An HTTP exchange failed: connection, TLS, timeout or a bad request."""


class ResponseTooLargeError(RequestError):
    """A response body, on the wire or decoded, passed the maximum response size."""


class UnsupportedAuthError(RequestError):
    """The request asks for an auth type this runner does not implement."""


class EgressBlockedError(RequestError):
    """The egress policy refused a host or address ("blocked by egress policy: <rule>")."""


class StepTakenOver(PmrunnerError):
    """A step was resolved elsewhere (its worker taken for lost) or its run ended: not sent."""


class PostmanApiError(PmrunnerError):
    """The Postman API answered with an error."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = None,
        error_name: str | None = None,
    ) -> None:
        """Parameters:
        message: what went wrong, naming the endpoint; never contains the API key.
        endpoint: the call that failed, e.g. ``GET /monitors/1-abc``.
        status: the HTTP status of the last answer, or None when there was none.
        error_name: the error name from the answer body (``instanceNotFoundError``, ...).
        """
        super().__init__(message)
        self.endpoint = endpoint
        self.status = status
        self.error_name = error_name


class PostmanAuthError(PostmanApiError):
    """The Postman API refused the API key (401) or its permissions (403)."""


class PostmanNotFoundError(PostmanApiError):
    """The monitor, collection or environment uid does not exist."""


class PostmanRateLimitError(PostmanApiError):
    """The Postman API still answered 429 after the allowed retries."""

    # retry_after: the wait in seconds the API asked for, when it said.

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        status: int | None = 429,
        error_name: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status=status, error_name=error_name)
        self.retry_after = retry_after


class PostmanUnavailableError(PostmanApiError):
    """The Postman API was unreachable, timed out or failed (5xx) after retries."""


class PostmanResponseError(PostmanApiError):
    """The Postman API answered with a body this client cannot read."""
