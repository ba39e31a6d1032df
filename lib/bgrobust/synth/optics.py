"""Image formation: optics blur, plate-level batch effects, and the camera.

The expected photon image (object density blurred by a Gaussian approximation of the
point-spread function) is multiplied by the plate's uneven illumination and gain,
photon (Poisson) noise is drawn, then the camera adds its offset and Gaussian read
noise and quantises to uint16.

Offset and gain are affine per channel, so per-protein standardisation removes them. The
plate effects that survive it change the *shape* of the image statistics: ``focus`` (an
autofocus offset that widens the point-spread function of every field of the plate),
``noise`` (read noise scaled per plate: another exposure or camera) and a background
``texture`` of the medium with the plate's own amplitude and grain (plate-bottom and
medium inhomogeneities). At their neutral values (1, 1, 0) the image is exactly the
image without them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi


@dataclass(frozen=True)
class PlateEffects:
    """The batch effects shared by every field of one plate.

    ``offset``: camera offset (ADU); ``gain``: multiplicative gain; ``vignette``:
    fractional intensity loss at the field corner; ``centre``: optical centre as a
    fraction of the field size; ``tilt``: a linear illumination gradient (fraction
    across the field) and its direction; ``focus``: factor on the point-spread function's
    width (1 = in focus); ``noise``: factor on the camera's read noise; ``texture``,
    ``texture_grain``: amplitude (share of the medium) and grain (px) of a background
    texture of the medium (0 = none).

    Examples
    --------
    >>> PlateEffects(200.0, 1.0, 0.0, (0.5, 0.5), 0.0, 0.0).focus
    1.0
    """

    offset: float
    gain: float
    vignette: float
    centre: tuple[float, float]
    tilt: float
    tilt_angle: float
    focus: float = 1.0
    noise: float = 1.0
    texture: float = 0.0
    texture_grain: float = 4.0


def sample_plate_effects(rng: np.random.Generator, *, offset: tuple[float, float] = (220.0, 30.0),
                         gain_sd: float = 0.15, vignette_max: float = 0.35,
                         tilt_max: float = 0.15) -> PlateEffects:
    """Draw one plate's batch effects.

    ``offset`` is (mean, sd) in ADU; ``gain_sd`` is the log-normal sd of the gain.
    """
    return PlateEffects(
        offset=float(rng.normal(*offset)),
        gain=float(rng.lognormal(0.0, gain_sd)),
        vignette=float(rng.uniform(0.0, vignette_max)),
        centre=tuple(rng.uniform(0.35, 0.65, 2)),
        tilt=float(rng.uniform(0.0, tilt_max)),
        tilt_angle=float(rng.uniform(0, 2 * np.pi)),
    )


def sample_surviving_effects(rng: np.random.Generator, effects: PlateEffects, *, focus_sd: float = 0.0,
                             noise_sd: float = 0.0, texture_max: float = 0.0,
                             grain: tuple[float, float] = (2.0, 12.0)) -> PlateEffects:
    """Add the plate effects that survive per-protein standardisation to ``effects``.

    ``focus`` and ``noise`` are log-normal with sds ``focus_sd`` and ``noise_sd``;
    ``texture`` is uniform in ``[0, texture_max]`` with a grain uniform in ``grain`` (px).
    With all three at 0 nothing is drawn and ``effects`` comes back unchanged.

    Examples
    --------
    >>> fx = PlateEffects(200.0, 1.0, 0.0, (0.5, 0.5), 0.0, 0.0)
    >>> sample_surviving_effects(np.random.default_rng(0), fx) is fx
    True
    >>> strong = sample_surviving_effects(np.random.default_rng(0), fx, noise_sd=0.5, texture_max=0.5)
    >>> strong.noise != 1.0, 0 <= strong.texture <= 0.5, strong.focus
    (True, True, 1.0)
    """
    if focus_sd == 0 and noise_sd == 0 and texture_max == 0:
        return effects
    focus = float(rng.lognormal(0.0, focus_sd)) if focus_sd > 0 else 1.0
    noise = float(rng.lognormal(0.0, noise_sd)) if noise_sd > 0 else 1.0
    texture = float(rng.uniform(0.0, texture_max)) if texture_max > 0 else 0.0
    texture_grain = float(rng.uniform(*grain))
    return replace(effects, focus=focus, noise=noise, texture=texture, texture_grain=texture_grain)


def illumination(shape: tuple[int, int], effects: PlateEffects) -> np.ndarray:
    """The relative illumination field of a plate (1 at the optical centre)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ny, nx = yy / max(h - 1, 1), xx / max(w - 1, 1)
    r2 = (ny - effects.centre[0]) ** 2 + (nx - effects.centre[1]) ** 2
    field = 1.0 - effects.vignette * r2 / 0.5
    ramp = (np.cos(effects.tilt_angle) * (nx - 0.5) + np.sin(effects.tilt_angle) * (ny - 0.5))
    return (field * (1.0 + effects.tilt * ramp)).astype(np.float32)


def blur(density: np.ndarray, psf_sigma: float) -> np.ndarray:
    """Gaussian point-spread function (``psf_sigma`` in px, per channel for 3-D input)."""
    if density.ndim == 3:
        return ndi.gaussian_filter(density, (0, psf_sigma, psf_sigma), mode="constant")
    return ndi.gaussian_filter(density, psf_sigma, mode="constant")


def camera(photons: np.ndarray, rng: np.random.Generator, effects: PlateEffects, *,
           read_noise: float = 6.0) -> np.ndarray:
    """Photon noise, gain, offset, read noise and uint16 quantisation.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> fx = PlateEffects(200.0, 1.0, 0.0, (0.5, 0.5), 0.0, 0.0)
    >>> img = camera(np.full((4, 4), 100.0), rng, fx)
    >>> img.dtype.name, bool(250 < img.mean() < 350)
    ('uint16', True)
    """
    counts = rng.poisson(np.clip(photons * effects.gain, 0, None)).astype(np.float32)
    counts += effects.offset + rng.normal(0.0, read_noise * effects.noise, photons.shape).astype(np.float32)
    return np.clip(np.rint(counts), 0, 65535).astype(np.uint16)
