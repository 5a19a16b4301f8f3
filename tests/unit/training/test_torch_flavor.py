"""The PyTorch flavor; skipped when torch is not installed (it is an optional extra)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris

from conveyor.exceptions import ModelError
from conveyor.training.model import Model

torch = pytest.importorskip("torch")


class Net(torch.nn.Module):
    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.conveyor_init = {"width": width}
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(4, width), torch.nn.ReLU(), torch.nn.Linear(width, 3)
        )

    def forward(self, x: object) -> object:
        return self.layers(x)


def test_torch_module_round_trip() -> None:
    X, _ = load_iris(return_X_y=True, as_frame=True)
    net = Net(width=5)
    model = Model.from_fitted(net, X, profile=False)
    assert model.trusted_types() == [f"{__name__}.Net"]
    loaded = Model.from_bytes(model.to_bytes(), trusted=model.trusted_types())
    assert loaded.flavor == "torch"
    with torch.no_grad():
        expected = net(torch.tensor(X.to_numpy(), dtype=torch.float32)).numpy()
    np.testing.assert_array_equal(loaded.predict(X), expected.argmax(axis=1))
    np.testing.assert_allclose(loaded.predict_proba(X).sum(axis=1), 1.0, rtol=1e-5)


def test_local_torch_class_is_refused() -> None:
    class Local(torch.nn.Module):
        def forward(self, x: object) -> object:
            return x

    with pytest.raises(ModelError, match="cannot be imported"):
        Model.from_fitted(Local(), load_iris(as_frame=True).data, profile=False).to_bytes()


def test_a_file_naming_another_class_is_refused_before_importing_it(tmp_path: object) -> None:
    import io
    import json
    import zipfile

    X, _ = load_iris(return_X_y=True, as_frame=True)
    data = Model.from_fitted(Net(), X, profile=False).to_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        header = json.loads(archive.read("model.json"))
        payload = archive.read("model.bin")
    # subprocess.Popen(args=[...]) would run a command if it were constructed.
    header["flavor_meta"]["class"] = "subprocess:Popen"
    header["flavor_meta"]["init"] = {"args": ["touch", f"{tmp_path}/pwned"]}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.json", json.dumps(header))
        archive.writestr("model.bin", payload)
    with pytest.raises(ModelError, match=r"subprocess\.Popen"):
        Model.from_bytes(buffer.getvalue())
    # Trusted by name but not a torch module: still never constructed.
    with pytest.raises(ModelError, match=r"not a torch\.nn\.Module"):
        Model.from_bytes(buffer.getvalue(), trusted=["subprocess.Popen"])
    import pathlib

    assert not (pathlib.Path(str(tmp_path)) / "pwned").exists()
