"""Client quotas in KRaft mode (KIP-546 as Kafka 3.9's ClientQuotaControlManager does it): the
controller's checks and ClientQuotaRecords, their replay into the controller's state, the
broker's image and its ClientQuotaManager (through the metadata publisher, a real ReplicaManager
as in test_kraft_broker_publisher)."""

from __future__ import annotations

from pathlib import Path

from kafkalike.broker.client_quota_manager import DEFAULT, ClientQuotaManager, QuotaEntity
from kafkalike.image import MetadataDelta, MetadataImage
from kafkalike.image.metadata_image import MetadataProvenance
from kafkalike.kraft.client_quota_control_manager import QuotaAlteration
from kafkalike.kraft.quorum_controller import ControllerState
from kafkalike.protocol import metadata_records as mr
from kafkalike.protocol.errors import ErrorCode
from tests.kraft.test_controller_replay import CONFIG, _through_the_log
from tests.kraft.test_kraft_broker_publisher import ME, kraft_broker, register

ALICE = (("user", "alice"),)
ALICE_C1 = (("user", "alice"), ("client-id", "c1"))
DEFAULT_CLIENT = (("client-id", None),)


def _alter(state: ControllerState, records: list[mr.ApiMessage], *entries: QuotaAlteration
           ) -> list[tuple[ErrorCode, str | None]]:
    result = state.client_quotas.alter_client_quotas(entries)
    for r in result.records:
        assert isinstance(r, mr.ClientQuotaRecord)
        state.replay(r, len(records))
        records.append(r)
    return list(result.response)


def test_quotas_are_set_changed_and_removed_as_records_that_replay_to_the_same_state() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    assert _alter(state, records, QuotaAlteration(ALICE, (("producer_byte_rate", 1048576.0, False),
                                                          ("request_percentage", 12.5, False))),
                  QuotaAlteration(DEFAULT_CLIENT, (("consumer_byte_rate", 2048.0, False),))) == [
        (ErrorCode.none, None), (ErrorCode.none, None)]
    assert records[0] == mr.ClientQuotaRecord(entity=(mr.EntityData("user", "alice"),), key="producer_byte_rate",
                                              value=1048576.0)
    assert state.client_quotas.quotas == {
        frozenset(ALICE): {"producer_byte_rate": 1048576.0, "request_percentage": 12.5},
        frozenset(DEFAULT_CLIENT): {"consumer_byte_rate": 2048.0}}
    # the same value again writes nothing; a removal of a key the entity lacks neither
    n = len(records)
    assert _alter(state, records, QuotaAlteration(ALICE, (("producer_byte_rate", 1048576.0, False),
                                                          ("consumer_byte_rate", 0.0, True)))) == [(ErrorCode.none, None)]
    assert len(records) == n
    _alter(state, records, QuotaAlteration(ALICE, (("producer_byte_rate", 0.0, True), ("request_percentage", 0.0, True))))
    assert records[-1] == mr.ClientQuotaRecord(entity=(mr.EntityData("user", "alice"),), key="request_percentage",
                                               remove=True)
    assert frozenset(ALICE) not in state.client_quotas.quotas

    replayed = ControllerState(CONFIG, clock=lambda: 0.0)
    for offset, r in enumerate(_through_the_log(records)):
        replayed.replay(r, offset)
    assert replayed.client_quotas.quotas == state.client_quotas.quotas
    assert replayed.snapshot_records() == state.snapshot_records()
    assert [r for r in state.snapshot_records() if isinstance(r, mr.ClientQuotaRecord)] == [
        mr.ClientQuotaRecord(entity=(mr.EntityData("client-id", None),), key="consumer_byte_rate", value=2048.0)]


def test_bad_alterations_get_kafkas_invalid_request_messages_and_write_nothing() -> None:
    state = ControllerState(CONFIG, clock=lambda: 0.0)
    records: list[mr.ApiMessage] = []
    answers = _alter(
        state, records,
        QuotaAlteration((), (("producer_byte_rate", 1.0, False),)),
        QuotaAlteration((("group", "g"),), (("producer_byte_rate", 1.0, False),)),
        QuotaAlteration((("user", ""),), (("producer_byte_rate", 1.0, False),)),
        QuotaAlteration((("ip", "10.0.0.1"), ("user", "bob")), (("connection_creation_rate", 1.0, False),)),
        QuotaAlteration((("ip", "not-an-ip"),), (("connection_creation_rate", 1.0, False),)),
        QuotaAlteration((("user", "bob"),), (("connection_creation_rate", 1.0, False),)),
        QuotaAlteration((("user", "carol"),), (("producer_byte_rate", -5.0, False),)),
        QuotaAlteration((("user", "dave"),), (("producer_byte_rate", 1.5, False),)),
        QuotaAlteration((("user", "erin"),), (("producer_byte_rate", 1.0, False), ("producer_byte_rate", 2.0, False))),
        QuotaAlteration((("ip", "10.0.0.1"),), (("connection_creation_rate", 10.0, False),)),
    )
    assert answers == [
        (ErrorCode.invalid_request, "Invalid empty client quota entity"),
        (ErrorCode.invalid_request, "Unhandled client quota entity type: group"),
        (ErrorCode.invalid_request, "Empty user not supported"),
        (ErrorCode.invalid_request,
         "Invalid quota entity combination, IP entity shouldnot be combined with User or ClientId"),
        (ErrorCode.invalid_request, "not-an-ip is not a valid IP or resolvable host."),
        (ErrorCode.invalid_request, "Invalid configuration key connection_creation_rate"),
        (ErrorCode.invalid_request, "Quota producer_byte_rate must be greater than 0"),
        (ErrorCode.invalid_request, "producer_byte_rate cannot be a fractional value."),
        (ErrorCode.invalid_request, "Duplicate quota key producer_byte_rate not updating quota for this entity "
                                    "ClientQuotaEntity(entries={user=erin})"),
        (ErrorCode.none, None)]
    assert records == [mr.ClientQuotaRecord(entity=(mr.EntityData("ip", "10.0.0.1"),),
                                            key="connection_creation_rate", value=10.0)]


def test_the_image_keeps_quotas_by_entity_and_drops_an_entity_without_any() -> None:
    delta = MetadataDelta(MetadataImage.EMPTY)
    for r in (mr.ClientQuotaRecord(entity=(mr.EntityData("user", "alice"), mr.EntityData("client-id", "c1")),
                                   key="producer_byte_rate", value=100.0),
              mr.ClientQuotaRecord(entity=(mr.EntityData("user", None),), key="consumer_byte_rate", value=50.0)):
        delta.replay(r)
    image = delta.apply(MetadataProvenance(1, 1, 0))
    assert dict(image.client_quotas.entities) == {
        frozenset(ALICE_C1): {"producer_byte_rate": 100.0}, frozenset({("user", None)}): {"consumer_byte_rate": 50.0}}
    later = MetadataDelta(image)
    later.replay(mr.ClientQuotaRecord(entity=(mr.EntityData("client-id", "c1"), mr.EntityData("user", "alice")),
                                      key="producer_byte_rate", remove=True))
    assert later.changed_quota_entities == {frozenset(ALICE_C1)}
    assert dict(later.apply(MetadataProvenance(2, 1, 0)).client_quotas.entities) == {
        frozenset({("user", None)}): {"consumer_byte_rate": 50.0}}


async def test_the_publisher_gives_the_images_quotas_to_the_brokers_quota_manager(tmp_path: Path) -> None:
    async with kraft_broker(tmp_path) as b:
        manager = ClientQuotaManager()
        b.publisher.client_quotas = manager
        await b.commit(register(ME),
                       mr.ClientQuotaRecord(entity=(mr.EntityData("user", "alice"),), key="producer_byte_rate",
                                            value=1024.0),
                       mr.ClientQuotaRecord(entity=(mr.EntityData("client-id", None),), key="consumer_byte_rate",
                                            value=2048.0),
                       mr.ClientQuotaRecord(entity=(mr.EntityData("ip", None),), key="connection_creation_rate",
                                            value=5.0))
        assert manager.quotas == {QuotaEntity(user="alice"): {"producer_byte_rate": 1024.0},
                                  QuotaEntity(client_id=DEFAULT): {"consumer_byte_rate": 2048.0}}
        assert manager.matching("producer_byte_rate", "alice", "any") == (QuotaEntity(user="alice"), 1024.0)
        await b.commit(mr.ClientQuotaRecord(entity=(mr.EntityData("user", "alice"),), key="producer_byte_rate",
                                            remove=True))
        assert manager.quotas == {QuotaEntity(client_id=DEFAULT): {"consumer_byte_rate": 2048.0}}
        assert manager.matching("producer_byte_rate", "alice", "any") is None
