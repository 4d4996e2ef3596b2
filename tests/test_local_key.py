"""The key ``tuneforge serve`` makes on its first start, for the local CLI."""

import stat

from tuneforge.service import Service
from tuneforge.store.db import open_database


def test_local_key_is_created_once_private_and_valid(settings):
    service = Service(open_database(settings.resolved_database_url), settings)
    key, created = service.keys.ensure_local()
    assert created
    path = settings.data_dir / "api_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == key
    assert service.keys.authenticate(key) == "default"
    again, created_again = service.keys.ensure_local()
    assert (again, created_again) == (key, False)
