from .reference import *  # noqa: F401,F403  (temporary during the move)
from .reference import NAME, VERSIONS, bundle_spec, load_reference, matches, random_config, version_of  # noqa: F401
