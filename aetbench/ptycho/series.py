"""From 4D-STEM data to the tomography's input: one ptychographic phase projection per tilt.

The simulator (:func:`aetbench.simulate.ptycho.simulate_4dstem`) gives a noise-free
:class:`~aetbench.ptycho.data.FourDSTEM` per tilt; :func:`phase_tilt_series` puts the
dose on every diffraction pattern, reconstructs each tilt with the chosen engine
(``"single-slice"`` or ``"multislice"``) and resamples the projected phase onto the
tomography grid.  The result is an ordinary :class:`~aetbench.types.TiltSeries` whose
metadata names the engine that made it, so the reconstruction pipeline runs on it
unchanged.

Examples
--------
>>> sorted(ENGINES)
['multislice', 'single-slice']
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import AetbenchError
from ..options import Checker, from_table
from ..types import TiltSeries
from .data import FourDSTEM

__all__ = ["ENGINES", "ReconConfig", "phase_tilt_series", "reconstruct_tilt"]

ENGINES = ("single-slice", "multislice")


@dataclass(frozen=True)
class ReconConfig:
    """Ptychographic reconstruction settings, one per engine run (lengths in Å).

    Attributes
    ----------
    engines : list of str
        Engines to run, each giving its own tilt series: ``"single-slice"``, ``"multislice"``.
    iterations : int
        Passes over all probe positions.
    batch_size : int
        Probe positions per mini-batch update.
    step : float
        Update step (1 = full amplitude projection).
    slice_thickness_A : float
        Multislice slice thickness [Å]; the number of slices is ``ceil(depth / slice_thickness_A)`` of the
        simulated cell (the particle's extent along the beam plus margins).
    refine_probe : bool
        Refine the probe as well (it starts from the known probe).
    background : str
        How the vacuum phase is removed before the projection is handed on (see
        :func:`aetbench.ptycho.reconstruct.phase_image`).
    noise_model : str
        Far-field update: ``"amplitude"`` (modulus replacement) or ``"poisson"`` (curvature-scaled gradient of the
        Poisson likelihood of the counts; see :func:`aetbench.ptycho.reconstruct.reconstruct_single_slice`).
    positivity : bool
        Clip every slice's negative phases to 0 after each pass (the potential is positive; see
        :func:`aetbench.ptycho.reconstruct.reconstruct_single_slice`).
    """

    engines: list[str] = field(default_factory=lambda: ["single-slice", "multislice"])
    iterations: int = 12
    batch_size: int = 64
    step: float = 1.0
    slice_thickness_A: float = 4.0
    refine_probe: bool = False
    background: str = "mode"
    noise_model: str = "amplitude"
    positivity: bool = False

    def __post_init__(self):
        for e in self.engines:
            if e not in ENGINES:
                raise AetbenchError(f"ptycho_recon.engines: expected entries from {', '.join(ENGINES)}, got {e!r}")
        if not self.engines:
            raise AetbenchError("ptycho_recon.engines: expected at least one engine")
        c = Checker(self, "ptycho_recon")
        c.integer("iterations", 1)
        c.integer("batch_size", 1)
        c.number("step", 0.0, 2.0, lo_open=True)
        c.number("slice_thickness_A", 0.0, lo_open=True, unit=" [Å]")
        c.choice("noise_model", ("amplitude", "poisson"))
        for name in ("refine_probe", "positivity"):
            if not isinstance(getattr(self, name), bool):
                raise AetbenchError(f"ptycho_recon.{name}: expected true or false, got {getattr(self, name)!r}")

    @classmethod
    def from_dict(cls, table: dict[str, Any]) -> "ReconConfig":
        """Build from a scenario's ``[simulation.ptycho_recon]`` table (``engines`` may be one name)."""
        t = dict(table)
        if isinstance(t.get("engines"), str):
            t["engines"] = [t["engines"]]
        return from_table(cls, t, "ptycho_recon")

    def n_slices(self, depth_A: float) -> int:
        """Multislice slices for a cell ``depth_A`` [Å] thick."""
        return max(1, int(np.ceil(depth_A / self.slice_thickness_A - 1e-9)))


def reconstruct_tilt(data: FourDSTEM, engine: str, config: ReconConfig, *, seed: int = 0):
    """Reconstruct one tilt; returns the :class:`~aetbench.ptycho.reconstruct.PtychoResult`."""
    from .reconstruct import reconstruct

    kw = dict(iterations=config.iterations, batch_size=config.batch_size, step=config.step,
              refine_probe=config.refine_probe, seed=seed, noise_model=config.noise_model,
              positivity=config.positivity)
    if engine == "multislice":
        return reconstruct(data, "multislice", n_slices=config.n_slices(data.depth_A), **kw)
    return reconstruct(data, engine, **kw)


def phase_tilt_series(series: list[FourDSTEM], engine: str, config: ReconConfig, *, shape, pixel_size: float,
                      seed: int = 0, progress: bool = False) -> TiltSeries:
    """Ptychographic phase projections of every tilt as a :class:`TiltSeries`.

    Parameters
    ----------
    series : list of FourDSTEM
        One dataset per tilt (counts or noise-free fractions), e.g. from
        :func:`aetbench.simulate.ptycho.apply_dose_4d_series`.
    engine : {"single-slice", "multislice"}
        Ptychography engine.
    config : ReconConfig
        Iterations, batch size, slices.
    shape : (int, int)
        Tomography image size (nx, ny) [pixels].
    pixel_size : float
        Tomography pixel size [Å]; pixel ``(nx // 2, ny // 2)`` lies on the projected rotation centre.
    seed : int
        Seeds the mini-batch order.

    Returns
    -------
    TiltSeries
        Projected phase [rad] (vacuum ≈ 0, positive on atoms), the series' Euler angles [deg], ``dose=None``
        (phases are not counts; the electron dose is ``metadata["dose_per_A2"]``); ``metadata["ptycho_engine"]`` names the engine, ``metadata["ptycho_seconds"]`` its time per tilt.
    """
    from tqdm.auto import tqdm

    from .reconstruct import phase_image

    if engine not in ENGINES:
        raise AetbenchError(f"ptycho engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if not series:
        raise AetbenchError("phase_tilt_series: no 4D-STEM data")
    nx, ny = int(shape[0]), int(shape[1])
    images, seconds, final_errors = [], [], []
    for k, data in enumerate(tqdm(series, desc=f"ptychography ({engine})", unit="tilt", disable=not progress)):
        t0 = time.perf_counter()
        res = reconstruct_tilt(data, engine, config, seed=seed + k)
        images.append(phase_image(res, data.centre_A, (nx, ny), pixel_size, background=config.background))
        seconds.append(time.perf_counter() - t0)
        final_errors.append(float(res.errors[-1]) if res.errors else float("nan"))
    angles = np.array([d.angle_deg for d in series], dtype=float)
    first = series[0]
    meta = {"simulator": first.metadata.get("simulator", "4d-stem"), "ptycho_engine": engine,
            "ptycho_slices": config.n_slices(first.depth_A) if engine == "multislice" else 1,
            "ptycho_iterations": config.iterations, "ptycho_noise_model": config.noise_model,
            "ptycho_positivity": config.positivity, "ptycho_step": config.step,
            "ptycho_seconds": seconds, "ptycho_final_error": final_errors,
            "units": "projected phase [rad]", "simulation": {k: v for k, v in first.metadata.items()
                                                              if k not in ("tilt_index", "phonon_seed")}}
    meta["dose_per_A2"] = first.dose_per_A2    # the electrons' dose; the images themselves are phases, not counts
    if "rotation_centre_object_A" in first.metadata:   # the simulator's rotation centre [Å] (aetbench.geometry)
        meta["centre_A"] = list(first.metadata["rotation_centre_object_A"])
    return TiltSeries(np.stack(images).astype(float), angles, pixel_size=float(pixel_size), dose=None, metadata=meta)
