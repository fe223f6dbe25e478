"""Every image form the public API takes decodes to the same pixels as the file does."""

import io

import numpy as np
import pytest
from PIL import Image

from edge_et.core.images import as_loaded_image, load_image
from edge_et.errors import InputError


@pytest.fixture()
def picture(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 255, (24, 40, 3), dtype=np.uint8)
    path = tmp_path / "p.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


def test_path_bytes_pil_and_numpy_give_the_same_pixels(picture):
    path, pixels = picture
    with Image.open(path) as opened:
        forms = [
            path,
            str(path),
            path.read_bytes(),
            bytearray(path.read_bytes()),
            opened,
            pixels,
            load_image(path),
        ]
        loaded = [as_loaded_image(form) for form in forms]
    assert len({image.sha256 for image in loaded}) == 1
    assert all((image.width, image.height) == (40, 24) for image in loaded)


def test_a_gray_array_becomes_rgb_and_the_callers_array_is_copied():
    gray = np.full((5, 7), 9, dtype=np.uint8)
    loaded = as_loaded_image(gray)
    assert loaded.rgb.shape == (5, 7, 3) and loaded.original_mode == "L"
    gray[:] = 200
    assert int(loaded.rgb.max()) == 9 and not loaded.rgb.flags.writeable


def test_a_pil_image_is_made_upright_and_rgb():
    rgba = Image.new("RGBA", (6, 4), (0, 0, 0, 0))  # fully transparent: composited over white
    loaded = as_loaded_image(rgba)
    assert loaded.rgb.shape == (4, 6, 3) and int(loaded.rgb.min()) == 255


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (np.zeros((4, 4, 3), dtype=np.float32), "uint8 array"),
        (np.zeros((4, 4, 4), dtype=np.uint8), "got shape (4, 4, 4)"),
        (np.zeros((0, 4, 3), dtype=np.uint8), "zero size"),
        (b"", "no data"),
        (io.BytesIO(b"x"), "from a BytesIO"),
        (None, "from a NoneType"),
    ],
)
def test_unusable_images_are_input_errors(bad, fragment):
    with pytest.raises(InputError) as caught:
        as_loaded_image(bad)
    assert fragment in str(caught.value)
