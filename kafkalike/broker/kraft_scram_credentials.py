"""A KRaft broker's SCRAM credentials, read from the metadata image (Kafka 3.9: the broker's
ScramPublisher fills its CredentialProvider from the ScramImage).

``ImageScramCredentialStore`` answers what the ZooKeeper mode's ScramCredentialStore answers
(``credential`` for the SASL/SCRAM authenticator, ``users`` / ``user_config`` for
DescribeUserScramCredentials through ScramCredentialApis) from the image's
UserScramCredentialRecords; ``user_config`` gives them in the ZooKeeper mode's
``/config/users/<user>`` form ({"SCRAM-SHA-256": "salt=...,stored_key=...,server_key=...,
iterations=n"}). Credentials change only through the controller (AlterUserScramCredentials is
forwarded): ``alter`` raises ScramCredentialError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kafkalike.broker.sasl_scram import ScramCredential, ScramCredentialError, ScramMechanism, credential_to_string
from kafkalike.image import MetadataImage

__all__ = ["ImageScramCredentialStore"]


class ImageScramCredentialStore:
    """See module doc. ``image()``: the broker's current metadata image."""

    def __init__(self, image: Callable[[], MetadataImage]) -> None:
        self.image = image

    def _credentials(self, user: str) -> dict[ScramMechanism, ScramCredential]:
        out = {}
        for (name, mechanism_type), data in self.image().scram.credentials.items():
            mechanism = ScramMechanism.for_type(mechanism_type)
            if name == user and mechanism is not None:
                out[mechanism] = ScramCredential(data.salt, data.stored_key, data.server_key, data.iterations)
        return out

    async def user_config(self, user: str) -> dict[str, str]:
        """The user's credentials as the ZooKeeper mode's user config ({} when none)."""
        return {m.mechanism_name: credential_to_string(c) for m, c in self._credentials(user).items()}

    async def credential(self, mechanism: ScramMechanism, user: str) -> ScramCredential | None:
        """The user's credential for ``mechanism``, None if the image has none."""
        return self._credentials(user).get(mechanism)

    async def users(self) -> list[str]:
        """Every user with a credential."""
        return sorted({name for name, _mechanism in self.image().scram.credentials})

    async def alter(self, user: str, upserts: dict[ScramMechanism, ScramCredential],
                    deletes: Iterable[ScramMechanism]) -> None:
        """Not here: AlterUserScramCredentials goes to the controller. Raises ScramCredentialError."""
        raise ScramCredentialError("SCRAM credentials are altered through the KRaft controller")
