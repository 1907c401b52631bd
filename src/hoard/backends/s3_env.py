"""The AWS configuration the CRT data path needs (credentials, region, CA bundle, the profile's
settings), read without botocore's session where that gives botocore's answer for certain.

Importing ``botocore.session`` costs ~170 ms of CPU, and every push that sends something and
every restore paid it before its first request, only to learn what the environment already
says. botocore's credential chain asks the environment first (``EnvProvider``) unless a profile
is named explicitly (``Session(profile=...)``; ``$AWS_PROFILE`` does not count), so with
``$AWS_ACCESS_KEY_ID`` and ``$AWS_SECRET_ACCESS_KEY`` set those are its credentials. The config
and credentials files are parsed by botocore's own ``configloader`` (cheap: no session, no
service models) and merged into profiles as ``Session.full_config`` does; region and CA bundle
come from the environment, else the profile, by botocore's precedence. Anything else, or any
doubt, returns None and the caller asks the session as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

#: Settings botocore reads (and may reject) while building its credential chain, before it asks
#: the environment; where one is set, the session decides (it may raise where this would not).
_CHAIN_ENV = (
    "AWS_METADATA_SERVICE_TIMEOUT",
    "AWS_METADATA_SERVICE_NUM_ATTEMPTS",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
    "AWS_EC2_METADATA_V1_DISABLED",
)
_CHAIN_CONFIG = (
    "metadata_service_timeout",
    "metadata_service_num_attempts",
    "ec2_metadata_service_endpoint",
    "ec2_metadata_service_endpoint_mode",
    "ec2_metadata_v1_disabled",
)


class Keys(NamedTuple):
    """Static credentials, shaped like botocore's ``ReadOnlyCredentials``."""

    access_key: str
    secret_key: str
    token: str | None

    def __repr__(self) -> str:  # never the secret (nor the key) in a log or a traceback
        return "Keys(from the environment)"


class EnvCredentials:
    """Credentials from the environment, with the one method the CRT path asks of botocore's."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def get_frozen_credentials(self) -> Keys:
        return self._keys

    def __repr__(self) -> str:
        return "EnvCredentials(from the environment)"


class EnvSession:
    """What ``s3_crt.make_path`` asks of a botocore session, answered without one."""

    def __init__(
        self,
        credentials: EnvCredentials,
        region: str | None,
        ca_bundle: str | None,
        scoped_config: Mapping[str, Any],
    ) -> None:
        self.region = region
        self._credentials = credentials
        self._ca_bundle = ca_bundle
        self._scoped_config = scoped_config

    def get_scoped_config(self) -> Mapping[str, Any]:
        return self._scoped_config

    def get_credentials(self) -> EnvCredentials:
        return self._credentials

    def get_config_variable(self, name: str) -> Any:
        if name == "ca_bundle":
            return self._ca_bundle
        if name == "region":
            return self.region
        raise KeyError(name)


def from_environment(
    profile: str | None, environ: Mapping[str, str] | None = None
) -> EnvSession | None:
    """botocore's answers for a session ``Session(profile=profile)``, or None where they cannot
    be known for certain without it (then the session is to be asked)."""
    env = os.environ if environ is None else environ
    if profile is not None:  # an explicit profile takes the environment out of botocore's chain
        return None
    access_key = env.get("AWS_ACCESS_KEY_ID", "")
    secret_key = env.get("AWS_SECRET_ACCESS_KEY", "")
    if not access_key or not secret_key or env.get("AWS_CREDENTIAL_EXPIRATION"):
        return None  # none, partial (botocore's error), or refreshable credentials
    if any(name in env for name in _CHAIN_ENV):
        return None
    token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None
    try:
        scoped = _scoped_config(env)
    except Exception:  # an unreadable config file: the session says what is wrong with it
        return None
    if scoped is None or any(name in scoped for name in _CHAIN_CONFIG):
        return None
    # botocore's config chains: the first variable present (even empty), else the profile
    region = env["AWS_DEFAULT_REGION"] if "AWS_DEFAULT_REGION" in env else scoped.get("region")
    ca_bundle = env["AWS_CA_BUNDLE"] if "AWS_CA_BUNDLE" in env else scoped.get("ca_bundle")
    return EnvSession(
        EnvCredentials(Keys(access_key, secret_key, token)), region, ca_bundle, scoped
    )


def _scoped_config(env: Mapping[str, str]) -> Mapping[str, Any] | None:
    """``Session.get_scoped_config()``: the profile's settings from the config file with the
    credentials file's merged in (``Session.full_config``); None where botocore raises
    ProfileNotFound."""
    from botocore import configloader
    from botocore.exceptions import ConfigNotFound

    config_file = env.get("AWS_CONFIG_FILE", "~/.aws/config")
    credentials_file = env.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials")
    try:
        config: dict[str, Any] = configloader.load_config(config_file)
    except ConfigNotFound:
        config = {"profiles": {}}
    profiles: dict[str, Any] = config["profiles"]
    try:
        for name, values in configloader.raw_config_parse(credentials_file).items():
            if name in profiles:
                profiles[name].update(values)
            else:
                profiles[name] = values
    except ConfigNotFound:
        pass
    name = env["AWS_DEFAULT_PROFILE"] if "AWS_DEFAULT_PROFILE" in env else env.get("AWS_PROFILE")
    if name is None:
        return dict(profiles.get("default", {}))
    if name not in profiles:
        return None
    return dict(profiles[name])
