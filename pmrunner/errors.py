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
    │   └── UnsupportedAuthError    an auth type this runner does not implement
    └── PostmanApiError             the Postman API answered with an error

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


class UnsupportedAuthError(RequestError):
    """The request asks for an auth type this runner does not implement."""


class PostmanApiError(PmrunnerError):
    """The Postman API answered with an error."""
