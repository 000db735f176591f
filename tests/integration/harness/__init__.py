"""The integration tests' peers and helpers, one module each: common (paths,
tokens, polling, HTTP), pki, nginx (the APIs), daemon, postgres, proxies.
`from harness import X` keeps working for every name."""
from .common import *  # noqa: F401,F403
from .common import _PEAK_RSS  # noqa: F401
from .daemon import *  # noqa: F401,F403
from .nginx import *  # noqa: F401,F403
from .pki import *  # noqa: F401,F403
from .postgres import *  # noqa: F401,F403
from .proxies import *  # noqa: F401,F403
