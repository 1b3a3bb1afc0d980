# -*- test-case-name: tests.test_examples_volume_manager -*-
"""
L{VolumeManager}: the volume service of the example, as Nova's managers
are written: the manager keeps its records in its own table (through
C{self.db}), the driver chosen by configuration keeps the bytes.

Its RPC methods take and return L{Volume} objects (oslo.versionedobjects,
see L{novasvc.examples.volume.objects}), which travel as their primitives
through the manager's L{serializer}; its drivers keep plain values (the
manager converts). It needs the C{objects} extra (C{pip install
'novasvc[objects]'}).

Run it::

    twistd -n novasvc --config etc/volume.yaml

and call it with L{novasvc.examples.volume.rpcapi.VolumeAPI}.
"""

import datetime
import uuid
from typing import Any, Dict, List, Optional, Tuple

import sqlalchemy as sa
from twisted.logger import Logger

from novasvc.config.options import DriverOpt, Opt
from novasvc.examples.volume.exceptions import InvalidVolume, VolumeNotFound
from novasvc.examples.volume.interfaces import IVolumeDriver
from novasvc.examples.volume.objects import Volume, VolumeObjectSerializer
from novasvc.core.manager import Manager
from novasvc.periodic import periodic_task
from novasvc.rpc.target import Target
from novasvc.rpc.serializer import RequestContextSerializer

__all__ = ["VolumeManager", "metadata", "volumes"]

_log = Logger()

#: The tables of the volume service (created by L{VolumeManager.init_host}).
metadata = sa.MetaData()

#: One row per volume of every volume host sharing the database.
volumes = sa.Table(
    "volumes", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("host", sa.String(255), nullable=False, index=True),
    sa.Column("size_gb", sa.Integer, nullable=False),
    # creating -> available -> deleting (then the row goes); error when a
    # delete failed.
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("location", sa.String(1024), nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # A name for humans (RPC API 1.3, Volume 1.1), or NULL.
    sa.Column("name", sa.String(255), nullable=True),
)

#: The states a volume may be deleted from.
_DELETABLE = ("available", "error")

#: The longest name a volume may have.
_NAME_MAX = 255


class VolumeManager(Manager):
    """
    Creates, lists and deletes the volumes of one host, over RPC on topic
    C{volume} (RPC API version 1.3; see
    L{novasvc.examples.volume.rpcapi.VolumeAPI} for the history).

    A volume, as the RPC methods take and return it, is a L{Volume}
    object (version 1.1: C{id}, C{host}, C{size_gb}, C{status},
    C{location}, C{created_at}, C{name}), whatever RPC version the request
    asked for: callers read results with the example's serializer, so
    clients are upgraded before the services, as Nova upgrades its control
    services before its computes. Requests of every 1.x version are
    served: C{delete_volume} takes a C{volume} (1.2) or a C{volume_id}
    (1.0). A request carrying a newer L{Volume} than this service knows
    gets an C{IncompatibleObjectVersion} error reply.

    Configuration, section C{volume}::

        volume:
          driver: novasvc.examples.volume.drivers.FileVolumeDriver
          default_size_gb: 1

    plus the section of the driver chosen.

    @cvar serializer: the RPC serializer: contexts as
        L{novasvc.context.RequestContext}, objects through
        L{VolumeObjectSerializer}.
    @ivar driver: the L{IVolumeDriver} the C{driver} option chose.
    @ivar stats: the driver's latest capacity report (see
        L{IVolumeDriver.get_stats}), refreshed every 60 seconds; C{{}}
        until the first report.
    """

    topic = "volume"
    target = Target(version="1.3")
    serializer = RequestContextSerializer(VolumeObjectSerializer())
    config_section = "volume"
    options = (
        DriverOpt("driver", IVolumeDriver,
                  default="novasvc.examples.volume.drivers.FakeVolumeDriver",
                  group="novasvc.volume.drivers",
                  help="The volume driver: fake, file (entry point group "
                       "novasvc.volume.drivers) or the dotted path of a class "
                       "providing IVolumeDriver."),
        Opt("default_size_gb", int, default=1, minimum=1,
            help="Size in GiB of a volume created without one."),
    )
    rpc_hidden_names = Manager.rpc_hidden_names | {"driver", "stats", "serializer"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """
        Takes L{Manager}'s arguments (C{host}, C{service_name}, C{config},
        C{db}), then loads the driver.

        @raise novasvc.exceptions.ConfigError: if the C{volume} section or
            the driver's section is refused.
        @raise novasvc.exceptions.LoadError: if the driver cannot be
            loaded or does not provide L{IVolumeDriver}.
        """
        Manager.__init__(self, *args, **kwargs)
        self.driver = self.load_driver()
        self.stats: Dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------

    async def init_host(self, service_ref: Optional[Any]) -> None:
        """
        Create the C{volumes} table if it is missing and check the driver,
        before the service takes requests.

        @raise novasvc.examples.volume.exceptions.VolumeDriverError: the
            driver is not usable (the service does not start).
        @raise RuntimeError: the manager has no database (C{db}).
        """
        if self.db is None:
            raise RuntimeError("VolumeManager needs a database API (db=)")
        await self.db.create_tables(metadata)
        await self.driver.check_for_setup_error()
        await self._update_volume_stats(None)
        _log.info("{host}: volume driver {driver} ready: {free} of {total} GiB free",
                  host=self.host, driver=type(self.driver).__name__,
                  free=self.stats.get("free_gb"), total=self.stats.get("total_gb"))

    # -- RPC API 1.0 (objects since 1.2, names since 1.3) -----------------

    async def create_volume(self, ctxt: Any, size_gb: Optional[int] = None,
                            name: Optional[str] = None) -> Volume:
        """
        Create a volume on this host.

        @param size_gb: its size in GiB (C{int} >= 1); C{None}: the
            configured C{default_size_gb}.
        @param name: a name for humans (C{str}, at most 255 characters;
            since 1.3), or C{None}.
        @return: the L{Volume}, C{available}.
        @raise InvalidVolume: C{size_gb} is not a whole number >= 1, or
            C{name} is not a C{str} of at most 255 characters.
        @raise novasvc.examples.volume.exceptions.InsufficientCapacity: the
            driver has too little room.
        @raise novasvc.examples.volume.exceptions.VolumeDriverError: the
            driver failed. A volume the driver refused leaves no record.
        """
        size = self.section.default_size_gb if size_gb is None else size_gb
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidVolume(reason=f"size_gb must be a whole number of GiB >= 1, got {size!r}")
        if name is not None and (not isinstance(name, str) or len(name) > _NAME_MAX):
            raise InvalidVolume(reason=f"name must be a string of at most {_NAME_MAX} characters")
        row = {"id": str(uuid.uuid4()), "host": self.host, "size_gb": size,
               "status": "creating", "location": None, "created_at": self._now(), "name": name}
        await self.db.run(_insert, row)
        try:
            made = await self.driver.create_volume(row["id"], size)
        except Exception:
            await self.db.run(_delete, row["id"])
            raise
        row.update(status="available", location=made.get("location"))
        await self.db.run(_set, row["id"], status="available", location=row["location"])
        _log.info("{host}: created volume {id} ({size} GiB)", host=self.host, id=row["id"],
                  size=size)
        return Volume.from_record(row, ctxt)

    async def delete_volume(self, ctxt: Any, volume_id: Optional[str] = None,
                            volume: Optional[Volume] = None) -> None:
        """
        Delete a volume of this host.

        @param volume: the volume (a L{Volume}; since 1.2).
        @param volume_id: its id (1.0; used when C{volume} is not given).
        @raise VolumeNotFound: this host has no such volume.
        @raise InvalidVolume: it is being created or deleted; or neither
            C{volume} nor C{volume_id} was given, or C{volume} is not a
            L{Volume}.
        @raise novasvc.examples.volume.exceptions.VolumeDriverError: the
            driver failed; the volume is then in status C{error} (and may be
            deleted again).
        """
        if volume is not None:
            if not isinstance(volume, Volume):
                raise InvalidVolume(reason="volume must be a Volume object")
            volume_id = volume.id
        elif volume_id is None:
            raise InvalidVolume(reason="delete_volume needs a volume (1.2) or a volume_id (1.0)")
        if not isinstance(volume_id, str):
            raise VolumeNotFound(volume_id=volume_id)
        claimed, status = await self.db.run(_claim_for_delete, volume_id, self.host)
        if status is None:
            raise VolumeNotFound(volume_id=volume_id)
        if not claimed:
            raise InvalidVolume(reason=f"volume {volume_id} is {status}")
        try:
            await self.driver.delete_volume(volume_id)
        except VolumeNotFound:
            _log.warn("{host}: volume {id} was already gone from the driver",
                      host=self.host, id=volume_id)
        except Exception:
            await self.db.run(_set, volume_id, status="error")
            raise
        await self.db.run(_delete, volume_id)
        _log.info("{host}: deleted volume {id}", host=self.host, id=volume_id)

    async def list_volumes(self, ctxt: Any) -> List[Volume]:
        """
        @return: this host's volumes (L{Volume}s), oldest first.
        """
        rows = await self.db.run(_select, self.host)
        return [Volume.from_record(row, ctxt) for row in rows]

    # -- RPC API 1.1 ------------------------------------------------------

    async def get_volume(self, ctxt: Any, volume_id: str) -> Volume:
        """
        @return: one volume of this host (a L{Volume}).
        @raise VolumeNotFound: this host has no such volume.
        """
        rows = []
        if isinstance(volume_id, str):
            rows = await self.db.run(_select, self.host, volume_id)
        if not rows:
            raise VolumeNotFound(volume_id=volume_id)
        return Volume.from_record(rows[0], ctxt)

    async def get_stats(self, ctxt: Any) -> Dict[str, Any]:
        """
        Ask the driver for its capacity now (and keep it in L{stats}).

        @return: the driver's report, see L{IVolumeDriver.get_stats}, plus
            C{host} (C{str}).
        @raise novasvc.examples.volume.exceptions.VolumeDriverError: the driver failed.
        """
        await self._update_volume_stats(ctxt)
        return dict(self.stats)

    # -- periodic tasks ---------------------------------------------------

    @periodic_task(spacing=60)
    async def _update_volume_stats(self, context: Any) -> None:
        """
        Refresh L{stats} from the driver, every 60 seconds (as Cinder's
        C{_report_driver_status}).
        """
        stats = await self.driver.get_stats()
        self.stats = {**stats, "host": self.host}

    # -- helpers ----------------------------------------------------------

    def _now(self) -> datetime.datetime:
        """
        @return: the service clock's time as a naive UTC C{datetime}.
        """
        now = datetime.datetime.fromtimestamp(self.clock.seconds(), datetime.timezone.utc)
        return now.replace(tzinfo=None)


# -- the database work, run in a worker thread by self.db.run --------------


def _insert(conn: sa.Connection, row: Dict[str, Any]) -> None:
    conn.execute(volumes.insert().values(**row))


def _set(conn: sa.Connection, volume_id: str, **values: Any) -> None:
    conn.execute(volumes.update().where(volumes.c.id == volume_id).values(**values))


def _delete(conn: sa.Connection, volume_id: str) -> None:
    conn.execute(volumes.delete().where(volumes.c.id == volume_id))


def _select(conn: sa.Connection, host: str, volume_id: Optional[str] = None) -> List[Any]:
    query = volumes.select().where(volumes.c.host == host)
    if volume_id is not None:
        query = query.where(volumes.c.id == volume_id)
    query = query.order_by(volumes.c.created_at, volumes.c.id)
    return [row._mapping for row in conn.execute(query)]


def _claim_for_delete(conn: sa.Connection, volume_id: str, host: str) -> Tuple[bool, Optional[str]]:
    """
    Move the volume to C{deleting} if its status allows it, in one
    statement (so two deletes cannot both claim it).

    @return: (C{True}, C{"deleting"}) when claimed; (C{False}, the status
        that prevents it) otherwise; (C{False}, C{None}) when the host has
        no such volume.
    """
    mine = sa.and_(volumes.c.id == volume_id, volumes.c.host == host)
    claimed = conn.execute(volumes.update().where(mine, volumes.c.status.in_(_DELETABLE))
                           .values(status="deleting"))
    if claimed.rowcount == 1:
        return True, "deleting"
    return False, conn.execute(sa.select(volumes.c.status).where(mine)).scalar()
