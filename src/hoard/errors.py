"""One exception tree for hoard.

Each class's docstring is the user-facing explanation and ``exit_code`` the process exit
status the CLI uses. Raise with a specific detail (``SourceMissing("/mnt/photos")``); the CLI
prints ``error: <detail>`` followed by the class docstring as a hint.
SDK exceptions never leave ``hoard.backends``: backends translate them into these classes.
"""

from __future__ import annotations


class HoardError(Exception):
    """hoard stopped."""

    exit_code = 1

    @property
    def hint(self) -> str:
        return " ".join((type(self).__doc__ or "").split())


class UsageError(HoardError):
    """Check the command line: `hoard COMMAND --help` lists the options."""

    exit_code = 2


class SourceMissing(UsageError):
    """A source folder or pattern root does not exist. Nothing was uploaded; check the path
    (is the disk mounted?) and run again."""


class TemplateError(UsageError):
    """The key template is malformed or names an unknown variable. Nothing was uploaded.
    Variables: see `hoard push --help`."""


class InvalidKey(UsageError):
    """A rendered key is not a safe object key (no `..` or `.` segment, no leading `/`, no
    control characters, at most 1024 UTF-8 bytes). Nothing was uploaded; change the template."""


class KeyConflict(HoardError):
    """Two different files render to the same key. Neither was uploaded; add `{base_dir}`,
    `{rel_path}` or `{guid}` to the template so every file gets its own key."""

    exit_code = 4


class SourceUnreadable(HoardError):
    """A source file could not be read (permissions, vanished, I/O error). It was not archived;
    the rest of the run went on. Fix the file and run again."""


class RemoteUrlError(UsageError):
    """Remote URLs look like `file:///path`, a plain path, or `s3://bucket/prefix`."""


class BackendError(HoardError):
    """The storage backend refused the request."""

    exit_code = 3
    #: True when every later request would fail the same way, so the run stops early.
    stops_run = False


class NotFound(BackendError):
    """The object, bucket or folder does not exist on the remote."""


class BucketNotFound(NotFound):
    """The bucket or destination folder does not exist or is not visible with these
    credentials. Create it, or check the URL, --endpoint-url and the credentials."""

    stops_run = True


class ObjectChanged(BackendError):
    """The object changed on the remote after it was listed, so it was left alone."""


class DiskFull(BackendError):
    """The destination is out of space. Objects written before are complete and recorded;
    free space and run the same command again to continue."""

    stops_run = True


class PermissionDenied(BackendError):
    """The remote refused access. Check the credentials (environment, AWS profile or instance
    role) and the bucket policy."""


class CredentialsRejected(PermissionDenied):
    """No credentials were found, or the store rejected them. hoard reads credentials only from
    boto3's standard chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE (--profile) or
    an instance role. Nothing was uploaded after this error."""

    stops_run = True


class WrongRegion(CredentialsRejected):
    """The bucket is in another region than the one requests were signed for. Set --region (or
    AWS_REGION, or region in the AWS profile) to the bucket's region."""


class NotWarm(BackendError):
    """The object is in an archive tier and must be thawed before it can be read."""


class Transient(BackendError):
    """A temporary failure (throttling, a dropped connection, a server error); hoard retried
    with backoff and the failure persisted. Running the same command again resumes."""


class Unreachable(Transient):
    """The remote endpoint cannot be reached. Check --endpoint-url / AWS_ENDPOINT_URL and the
    network; running the same command again resumes where this run stopped."""

    stops_run = True


class CatalogError(HoardError):
    """The catalog database cannot be used. Use --catalog to point at another file."""

    exit_code = 5


class ConfigError(UsageError):
    """The configuration file (hoard.toml) is not valid; nothing was run. The message names the
    file, the line or key, and what is expected; `hoard init` writes a commented example."""


class CatalogBusy(HoardError):
    """Another hoard process is writing this catalog, and only one run at a time may. Wait for
    it to finish (`--wait-lock SECONDS` waits for you), or use another --catalog."""

    exit_code = 8


class Interrupted(HoardError):
    """hoard was asked to stop (SIGTERM or Ctrl-C) and stopped between files. Everything
    finished before is recorded; run the same command again to continue."""

    exit_code = 130
