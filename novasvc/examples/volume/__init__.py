"""
The volume service: a complete example of a novasvc service.

  - L{interfaces.IVolumeDriver}: what a storage backend does;
  - L{drivers}: L{drivers.FakeVolumeDriver} (in memory) and
    L{drivers.FileVolumeDriver} (sparse files), chosen by configuration;
  - L{manager.VolumeManager}: the service (topic C{volume}), with its own
    C{volumes} table;
  - L{rpcapi.VolumeAPI}: its client, with a version cap;
  - L{exceptions}: the errors that cross the wire as themselves;
  - L{testing}: the contract tests any L{interfaces.IVolumeDriver} should
    pass.

Run it with C{twistd -n novasvc --config etc/volume.yaml}.
"""
