"""What `import ferlib` sets up before TensorFlow loads."""

import os
import platform
import subprocess
import sys

import pytest

PROBE = (
    "import os, ferlib; from tensorflow.python.util import _pywrap_util_port as port; "
    "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], port.IsMklEnabled())"
)
LINUX_X86 = sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")


@pytest.mark.skipif(not LINUX_X86, reason="TensorFlow's oneDNN build is the Linux x86-64 one")
@pytest.mark.parametrize(("setting", "expected"), [(None, "1 True"), ("0", "0 False")])
def test_importing_ferlib_turns_on_onednn_unless_told_not_to(setting, expected):
    environment = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        environment["TF_ENABLE_ONEDNN_OPTS"] = setting
    output = subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True, check=True)
    assert output.stdout.strip().splitlines()[-1] == expected
