"""Zhou–Johnson–Wadley (2004) alloy EAM: kernel vs finite differences, vs ASE's EAM calculator and vs the
pure-metal properties the 2004 parameters were fitted to."""
from __future__ import annotations

import numpy as np
import pytest

from aetbench.io.files import AetbenchError
from aetbench.structures.eam import (ZHOU2004, eam_cutoff, eam_density, eam_embedding, eam_energy_reference,
                                     eam_pair, eam_potential, write_setfl)
from aetbench.structures.random import random_sphere

SPECIES = ["Co", "Pd", "Pt"]


@pytest.fixture(scope="module")
def cluster():
    """40-atom random Co/Pd/Pt cluster (min distance 2.3 Å, bonds down to the repulsive wall)."""
    x = random_sphere(40, min_distance=2.3, density=0.07, seed=4).positions
    t = np.random.default_rng(1).integers(0, 3, len(x))
    assert set(t) == {0, 1, 2}
    return x, t


def test_forces_match_finite_differences(cluster):
    x, t = cluster
    pot = eam_potential(SPECIES)
    e, f = pot.energy_forces(x, t)
    h = 1e-5
    fd = np.zeros_like(x)
    for i in range(len(x)):
        for d in range(3):
            xp, xm = x.copy(), x.copy()
            xp[i, d] += h
            xm[i, d] -= h
            fd[i, d] = -(pot.energy_forces(xp, t)[0] - pot.energy_forces(xm, t)[0]) / (2 * h)
    assert np.abs(f).max() > 0.5
    np.testing.assert_allclose(f, fd, atol=1e-6)
    np.testing.assert_allclose(f.sum(0), 0, atol=1e-10)  # free cluster: no net force


def test_kernel_equals_analytic_sum(cluster):
    """Hermite tables vs the analytic functions in the kernel and a plain numpy double sum."""
    x, t = cluster
    el = [SPECIES[k] for k in t]
    e, f = eam_potential(SPECIES).energy_forces(x, t)
    ea, fa = eam_potential(SPECIES, analytic=True).energy_forces(x, t)
    assert ea == pytest.approx(eam_energy_reference(x, el), rel=1e-13)
    assert e == pytest.approx(ea, abs=1e-8)  # ~800 pairs, interpolation error < 1e-10 eV each
    np.testing.assert_allclose(f, fa, atol=1e-7)


def test_matches_ase_eam_calculator(cluster, tmp_path):
    """Same functions written as a LAMMPS eam/alloy file and evaluated by ase.calculators.eam.EAM
    (cubic splines of the tabulated functions; pair, density and embedding all exercised)."""
    from ase import Atoms
    from ase.calculators.eam import EAM

    x, t = cluster
    path = tmp_path / "CoPdPt_zhou04.eam.alloy"
    write_setfl(path, SPECIES)
    atoms = Atoms([SPECIES[k] for k in t], positions=x + 20.0, cell=[60, 60, 60], pbc=False)
    atoms.calc = EAM(potential=str(path))
    e_ase = atoms.get_potential_energy()
    f_ase = atoms.get_forces()
    e, f = eam_potential(SPECIES).energy_forces(x, t)
    assert e < -100  # bound cluster, ~-2.6 eV/atom
    # measured: |dE| 4e-10 eV, max |dF| 1e-5 eV/Å (ASE's splines on the 10^4-point grids)
    assert e == pytest.approx(e_ase, abs=1e-6)
    np.testing.assert_allclose(f, f_ase, atol=1e-4)
    # ASE also reports the pair part on its own: equal to our sum of φ over the pairs inside r_c
    d = np.linalg.norm(x[:, None] - x[None], axis=2)
    i, j = np.triu_indices(len(x), 1)
    m = d[i, j] < eam_cutoff(SPECIES)
    pair = sum(float(eam_pair(SPECIES[t[a]], SPECIES[t[b]], r)[0]) for a, b, r in zip(i[m], j[m], d[i, j][m]))
    assert pair < -1.0
    assert atoms.calc.results["energy_components"]["pair"] == pytest.approx(pair, abs=1e-6)


def _site_energy(el, a, struct):
    """Energy per atom [eV] of a perfect crystal (centre atom of a large block), numpy reference functions."""
    from ase.build import bulk

    at = (bulk(el, "fcc", a=a, cubic=True).repeat(5) if struct == "fcc"
          else bulk(el, "hcp", a=a, c=a * np.sqrt(8 / 3)).repeat((7, 7, 5)))
    x = at.get_positions()
    c = x[np.argmin(np.linalg.norm(x - x.mean(0), axis=1))]
    r = np.linalg.norm(x - c, axis=1)
    r = r[(r > 0.1) & (r < eam_cutoff([el]))]
    return eam_embedding(el, eam_density(el, r)[0].sum())[0][0] + 0.5 * eam_pair(el, el, r)[0].sum()


@pytest.mark.parametrize("el,struct,a_fit,ec_fit", [("Pd", "fcc", 3.89, 3.91), ("Pt", "fcc", 3.92, 5.77),
                                                    ("Co", "hcp", 2.507, 4.41)])
def test_pure_metal_lattice_constant_and_cohesive_energy(el, struct, a_fit, ec_fit):
    """Zhou et al. fit a and E_c of each metal (Pd 3.89 Å / 3.91 eV, Pt 3.92 Å / 5.77 eV; Co as ideal hcp,
    a = r_e = 2.506 Å, E_c = -F0 - (pair sum) = 4.41 eV vs experiment 2.507 Å / 4.39 eV)."""
    from scipy.optimize import minimize_scalar

    res = minimize_scalar(lambda a: _site_energy(el, a, struct), bracket=(0.97 * a_fit, a_fit, 1.03 * a_fit),
                          tol=1e-7)
    assert res.x == pytest.approx(a_fit, abs=0.005)
    assert -res.fun == pytest.approx(ec_fit, abs=0.02)
    # at equilibrium the embedding density is the fitted rho_e (the pair sum is balanced by F'(rho_e) = 0)
    r_nn = res.x / np.sqrt(2) if struct == "fcc" else res.x
    assert r_nn == pytest.approx(ZHOU2004[el]["re"], rel=1e-3)


@pytest.mark.parametrize("el", SPECIES)
def test_embedding_pieces_join_continuously(el):
    """The three published pieces of F(rho) meet (to the 6-digit precision of the table) at rho_n and rho_0:
    a check of the parameter transcription and of which coefficient belongs to which piece."""
    p = ZHOU2004[el]
    for rho in (p["rhon_factor"] * p["rhoe"], p["rho0_factor"] * p["rhoe"]):
        f, d = eam_embedding(el, [rho * (1 - 1e-12), rho * (1 + 1e-12)])
        assert abs(f[1] - f[0]) < 1e-5
        assert abs(d[1] - d[0]) < 1e-5 + 1e-3 * abs(d[0])
    f, d = eam_embedding(el, [p["rhoe"]])
    assert f[0] == pytest.approx(p["F0"]) and abs(d[0]) < 1e-12  # minimum of F at the fitted density


def test_cross_pair_and_cutoff():
    r = np.linspace(2.0, 6.0, 50)
    np.testing.assert_array_equal(eam_pair("Co", "Pt", r)[0], eam_pair("Pt", "Co", r)[0])
    # the alloy cross pair lies between the pure pairs' minima (Co 2.5, Pt 2.77 Å)
    rr = np.linspace(2.0, 3.5, 3001)
    r_min = rr[np.argmin(eam_pair("Co", "Pt", rr)[0])]
    assert rr[np.argmin(eam_pair("Co", "Co", rr)[0])] < r_min < rr[np.argmin(eam_pair("Pt", "Pt", rr)[0])]
    assert eam_cutoff(SPECIES) == pytest.approx(np.sqrt(5) * 2.771916)  # create.f: sqrt(10)/2 * sqrt(2) r_e(Pt)
    # the cut (unshifted) functions are negligible there
    rc = eam_cutoff(SPECIES)
    for el in SPECIES:
        assert abs(eam_density(el, rc)[0]) < 2e-5 and abs(eam_pair(el, el, rc)[0]) < 1e-5
    with pytest.raises(AetbenchError, match="no parameters"):
        eam_potential(["Co", "Xx"])


def test_serial_and_parallel_drivers_give_the_same_bits():
    from aetbench.structures import eam
    from aetbench.structures.build import random_packing
    from aetbench.structures.neighbors import neighbor_list

    x = random_packing(300, 0.07, 2.2, np.random.default_rng(5))
    t = np.arange(300) % 3
    pot = eam_potential(SPECIES)
    off, idx = neighbor_list(x, pot.cutoff)
    a = eam._eam_serial(x, t, off, idx, *pot.params)
    b = eam._eam_parallel(x, t, off, idx, *pot.params)
    assert a[0] == b[0] and a[1].tobytes() == b[1].tobytes() and np.abs(a[1]).max() > 0.1


_FCC = np.array([(0, 0, 0), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)])


def _fcc_cell_energy(elements, a, c):
    """Energy per atom [eV] of a periodic 4-atom tetragonal fcc-based cell (a × a × c [Å]) with the given
    elements on _FCC, by lattice sums of the numpy reference functions."""
    cell = np.diag([a, a, c])
    g = np.array(np.meshgrid(*[np.arange(-3, 4)] * 3, indexing="ij")).reshape(3, -1).T
    x = np.concatenate([(g + f) @ cell for f in _FCC])
    el = np.repeat(np.asarray(elements), len(g))
    rc = eam_cutoff(sorted(set(elements)))
    e = 0.0
    for f, ei in zip(_FCC, elements):
        r = np.linalg.norm(x - f @ cell, axis=1)
        rho = 0.0
        for ej in set(elements):
            m = (el == ej) & (r > 0.1) & (r < rc)
            rho += eam_density(ej, r[m])[0].sum()
            e += 0.5 * eam_pair(ei, ej, r[m])[0].sum()
        e += eam_embedding(ei, rho)[0][0]
    return e / 4


def test_cobalt_platinum_ordered_alloys():
    """Cross pair of the alloy scheme (no Co–Pt fit) vs the ordered Co–Pt phases: L1_2 CoPt3 a = 3.831 Å and
    L1_0 CoPt a = 3.803 Å, c = 3.701 Å (Pearson's handbook); both form from the elements (dH < 0).
    Measured: CoPt3 3.821 Å, dH -0.16 eV/atom; CoPt a 3.770 Å, c 3.626 Å (c/a 0.962 vs 0.973), dH -0.21 eV/atom
    (the model binds Co–Pt more strongly and shorter than experiment)."""
    from scipy.optimize import minimize

    def relax(els, a0, tet):
        fun = (lambda z: _fcc_cell_energy(els, z[0], z[1])) if tet else (lambda z: _fcc_cell_energy(els, z[0], z[0]))
        r = minimize(fun, [a0, a0] if tet else [a0], method="Nelder-Mead", options=dict(xatol=1e-4, fatol=1e-8))
        return r.x, r.fun

    pure = {el: relax([el] * 4, a0, False)[1] for el, a0 in (("Co", 3.54), ("Pt", 3.92))}
    (a3,), e3 = relax(["Co", "Pt", "Pt", "Pt"], 3.83, False)
    assert a3 == pytest.approx(3.831, abs=0.02)
    assert e3 - (pure["Co"] + 3 * pure["Pt"]) / 4 < -0.05
    (a, c), e1 = relax(["Co", "Co", "Pt", "Pt"], 3.80, True)  # Co layer at z = 0, Pt layer at z = c/2
    assert a == pytest.approx(3.803, abs=0.05) and c == pytest.approx(3.701, abs=0.1) and c < a
    assert e1 - (pure["Co"] + pure["Pt"]) / 2 < -0.05


def test_recipe_builds_with_the_eam(tmp_path):
    """``kind = "eam-zhou2004"`` selects this kernel in the melt-quench (the logged final energy is the EAM
    energy of the returned particle), relaxes to the requested force, and the same seed gives the same bits."""
    from aetbench.structures.command import build_from_recipe
    from aetbench.structures.recipe import load_recipe

    p = tmp_path / "tiny_eam.toml"
    p.write_text('seed = 3\n[composition]\nCo = 18\nPd = 15\nPt = 7\n[packing]\ndensity = 0.07\n'
                 'min_distance = 2.2\n[potential]\nkind = "eam-zhou2004"\n[schedule]\nmelt_fs = 100.0\n'
                 'quench_fs = 200.0\nt_melt = 2500.0\ndt = 2.0\n')
    rec = load_recipe(p)
    log: dict = {}
    a = build_from_recipe(rec, 3, log)
    b = build_from_recipe(rec, 3)
    assert a.positions.tobytes() == b.positions.tobytes() and list(a.elements) == list(b.elements)
    types = np.array([SPECIES.index(e) for e in a.elements])
    e, f = eam_potential(SPECIES).energy_forces(a.positions, types)
    assert log["energy_eV"] == pytest.approx(e, abs=1e-9)
    assert np.abs(f).max() <= 0.0101 and e / 40 < -3.0


@pytest.mark.slow
def test_copdpt_small_eam_glass(tmp_path):
    """The 400-atom CoPdPt glass with the EAM (~25 s build): amorphous, alloy density, 12-13 neighbours and
    size-ordered partial first peaks.  The issue's criterion (every partial peak within 0.1 Å of the sum of
    12-coordinated metallic radii) is NOT met: Co–Pt 0.10-0.11 Å and Pt–Pt 0.15-0.21 Å short over seeds
    400, 1, 2 (Gupta, same recipe and seeds: 0.04-0.06 and 0.13-0.15 Å).  Cause: a Pt site in the glass holds
    only 0.81 of its fitted density rho_e (a Co neighbour gives f = 1.66 at 2.6 Å, Pt needs rho_e/12 = 2.78),
    so F'(rho) < 0 pulls its neighbours in.  The test xfails while the criterion is missed and fails once it
    is met (then update this docstring and the recipe choice)."""
    from aetbench.structures.command import _build_cached

    from test_structures import _fitted_peaks

    model, m, _ = _build_cached("copdpt_small_eam", None, tmp_path, False)
    assert model.counts() == {"Co": 184, "Pd": 153, "Pt": 63}
    assert m["crystal_like_fraction"] <= 0.10
    assert m["density_per_A3"] == pytest.approx(0.0763, rel=0.10)
    assert 11.5 <= m["coordination"]["all"] <= 14.0
    fit = _fitted_peaks(model, m["bond_cutoff_A"])
    assert fit["Co-Co"] < fit["Co-Pd"] < fit["Pd-Pd"]
    radii = {"Co": 1.25, "Pd": 1.37, "Pt": 1.39}
    off = {k: v - radii[k.split("-")[0]] - radii[k.split("-")[1]] for k, v in fit.items()}
    assert all(abs(v) < 0.25 for v in off.values()), off
    if max(abs(v) for v in off.values()) > 0.1:
        pytest.xfail(f"partial first peaks vs metallic radii: {off}")
    raise AssertionError(f"the EAM now meets the 0.1 Å criterion ({off}): update the docstring and gupta comparison")
