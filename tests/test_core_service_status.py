"""
Tests for L{novasvc.core.service_status}: the payload and sending of Nova's
versioned service notifications.
"""

import datetime

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from novasvc.context import RequestContext
from novasvc.db.record import ServiceRecord
from novasvc.core.service_status import (
    PAYLOAD_NAME,
    PAYLOAD_VERSION,
    notify_service,
    publisher_id,
    service_status_payload,
    status_changed,
)

_RECORD = ServiceRecord(
    id=3, uuid="fa69c544-906b-4a6a-a9c6-c1f7a8078c73", host="host1", binary="novasvc-volume",
    topic="volume", report_count=7, disabled=True, disabled_reason="maintenance", forced_down=False,
    last_seen_up=datetime.datetime(2026, 12, 7, 19, 35, 21, 123456), version=1,
)


class _Recorder:
    """
    A notifier that keeps what it was asked to send.
    """

    def __init__(self, publisher_id=None, sent=None):
        self.publisher_id = publisher_id
        self.sent = [] if sent is None else sent

    def prepare(self, publisher_id=None, retry=None):
        return _Recorder(publisher_id, self.sent)

    def info(self, ctxt, event_type, payload):
        self.sent.append((self.publisher_id, ctxt, event_type, payload))
        return defer.succeed(None)


class PayloadTests(SynchronousTestCase):
    def test_fields(self):
        """
        When a record is turned into a payload, then its data holds Nova's
        eleven ServiceStatusPayload fields with the record's values, the
        time in oslo.versionedobjects' form.
        """
        payload = service_status_payload(_RECORD)
        self.assertEqual(payload["nova_object.data"], {
            "host": "host1", "binary": "novasvc-volume", "topic": "volume", "report_count": 7,
            "disabled": True, "disabled_reason": "maintenance", "availability_zone": None,
            "last_seen_up": "2026-12-07T19:35:21Z", "forced_down": False, "version": 1,
            "uuid": "fa69c544-906b-4a6a-a9c6-c1f7a8078c73",
        })
        self.assertEqual((payload["nova_object.name"], payload["nova_object.namespace"],
                          payload["nova_object.version"]), ("ServiceStatusPayload", "nova", "1.1"))
        self.assertEqual(payload["nova_object.changes"], sorted(payload["nova_object.data"]))

    def test_never_seen(self):
        """
        When the service never reported, then last_seen_up is null.
        """
        record = ServiceRecord(id=1, uuid="u", host="h", binary="b", topic="t")
        self.assertIsNone(service_status_payload(record)["nova_object.data"]["last_seen_up"])

    def test_versioned_objects_read_it(self):
        """
        When oslo.versionedobjects reads the payload with a class declared
        as Nova declares ServiceStatusPayload 1.1, then every field comes
        back with the record's value.
        """
        from oslo_versionedobjects import base
        from oslo_versionedobjects import fields as ovo_fields

        class _Base(base.VersionedObject):
            OBJ_SERIAL_NAMESPACE = "nova_object"
            OBJ_PROJECT_NAMESPACE = "nova"

        class ServiceStatusPayload(_Base):
            VERSION = "1.1"
            fields = {
                "host": ovo_fields.StringField(nullable=True),
                "binary": ovo_fields.StringField(nullable=True),
                "topic": ovo_fields.StringField(nullable=True),
                "report_count": ovo_fields.IntegerField(),
                "disabled": ovo_fields.BooleanField(),
                "disabled_reason": ovo_fields.StringField(nullable=True),
                "availability_zone": ovo_fields.StringField(nullable=True),
                "last_seen_up": ovo_fields.DateTimeField(nullable=True),
                "forced_down": ovo_fields.BooleanField(),
                "version": ovo_fields.IntegerField(),
                "uuid": ovo_fields.UUIDField(),
            }

        self.assertEqual((ServiceStatusPayload.obj_name(), ServiceStatusPayload.VERSION),
                         (PAYLOAD_NAME, PAYLOAD_VERSION))
        registry = base.VersionedObjectRegistry()
        registry._register_class(ServiceStatusPayload)
        payload = service_status_payload(_RECORD)
        obj = ServiceStatusPayload.obj_from_primitive(payload)
        self.assertEqual((obj.host, obj.binary, obj.report_count, obj.disabled, obj.uuid),
                         ("host1", "novasvc-volume", 7, True, _RECORD.uuid))
        self.assertEqual(obj.last_seen_up.replace(tzinfo=None), datetime.datetime(2026, 12, 7, 19, 35, 21))
        self.assertEqual(obj.obj_to_primitive()["nova_object.data"], payload["nova_object.data"])


class StatusChangedTests(SynchronousTestCase):
    def test_status_fields(self):
        """
        When disabled, disabled_reason or forced_down differ, then the
        status changed.
        """
        import attrs

        for change in ({"disabled": False}, {"disabled_reason": "other"}, {"forced_down": True}):
            self.assertTrue(status_changed(_RECORD, attrs.evolve(_RECORD, **change)), change)

    def test_other_fields(self):
        """
        When only other fields differ (a report, the topic), then the
        status did not change.
        """
        import attrs

        self.assertFalse(status_changed(_RECORD, attrs.evolve(_RECORD, report_count=8, topic="x",
                                                              updated_at=datetime.datetime.now())))


class NotifyServiceTests(SynchronousTestCase):
    def test_sends_info(self):
        """
        When a service change is notified, then the notifier, prepared with
        the service's C{<binary>:<host>} publisher id, sends
        C{service.<action>} at INFO with the payload.
        """
        notifier = _Recorder()
        ctxt = RequestContext(user_id="admin")
        self.successResultOf(notify_service(notifier, "update", _RECORD, ctxt))
        self.assertEqual(notifier.sent, [("novasvc-volume:host1", ctxt, "service.update",
                                          service_status_payload(_RECORD))])
        self.assertEqual(publisher_id(_RECORD), "novasvc-volume:host1")

    def test_admin_context(self):
        """
        When no context is given, then an admin context goes with it.
        """
        notifier = _Recorder()
        notify_service(notifier, "create", _RECORD)
        self.assertTrue(notifier.sent[0][1].is_admin)
