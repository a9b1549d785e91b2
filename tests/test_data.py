"""Behaviour of the datasets, the extractors and ``make_dataset``."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bayes_bps.data import (
    SPLITS,
    DatasetError,
    DigitsDataset,
    FolderDataset,
    ShapesDataset,
    build_sketch_dataset,
    make_dataset,
    sketch_from_image,
)
from bayes_bps.data.shapes import COLOURS, SHAPES, TASKS
from bayes_bps.extract import main as extract_main

CONDITION_CHANNELS = {"sketch": 1, "segmentation": 3, "layout": 3, "style": 3}


# --- shapes -------------------------------------------------------------------------------


def test_shapes_same_seed_same_items_and_different_seed_different_items():
    first, again, other = ShapesDataset(seed=1), ShapesDataset(seed=1), ShapesDataset(seed=2)
    for i in range(5):
        target, condition, caption = first[i]
        target_again, condition_again, caption_again = again[i]
        assert torch.equal(target, target_again) and torch.equal(condition, condition_again)
        assert caption == caption_again
    assert any(not torch.equal(first[i][0], other[i][0]) for i in range(5))


def test_shapes_scene_depends_only_on_index_not_length_or_access_order():
    short, long = ShapesDataset(length=10, seed=3), ShapesDataset(length=500, seed=3)
    backwards = [long[i] for i in reversed(range(10))][::-1]
    for i in range(10):
        assert torch.equal(short[i][0], backwards[i][0])
        assert short[i][2] == backwards[i][2]


def test_shapes_splits_differ():
    splits = [ShapesDataset(split=split, length=20) for split in SPLITS]
    for i in range(20):
        images = [dataset[i][0] for dataset in splits]
        assert all(not torch.equal(a, b) for k, a in enumerate(images) for b in images[k + 1:])


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("task", TASKS)
def test_shapes_item_shapes_and_ranges(task, resolution):
    dataset = ShapesDataset(task=task, length=4, resolution=resolution)
    assert dataset.condition_channels == CONDITION_CHANNELS[task] and dataset.image_channels == 3
    for target, condition, caption in dataset:
        assert target.shape == (3, resolution, resolution) and target.dtype == torch.float32
        assert condition.shape == (CONDITION_CHANNELS[task], resolution, resolution)
        assert condition.dtype == torch.float32
        assert target.min() >= -1 and target.max() <= 1
        assert condition.min() >= 0 and condition.max() <= 1
        assert caption.startswith("a ")


def test_shapes_edges_are_anti_aliased():
    image = ShapesDataset().scene(0).image
    levels = torch.unique(image)
    assert len(levels) > 10  # flat colours alone would give only a handful of values


def test_shapes_caption_names_the_objects_left_to_right():
    dataset = ShapesDataset(length=200)
    counts = set()
    for i in range(200):
        objects = dataset.factors(i)
        counts.add(len(objects))
        phrases = [f"a {obj.colour} {obj.shape}" for obj in objects]
        expected = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
        assert dataset[i][2] == expected
        centres = [obj.box[0] + obj.box[2] for obj in objects]
        assert centres == sorted(centres)
        assert all(obj.shape in SHAPES and obj.colour in COLOURS for obj in objects)
    assert counts == {1, 2, 3}
    assert dataset.captions() == [dataset[i][2] for i in range(200)]


def test_shapes_objects_do_not_overlap_and_have_the_right_size():
    dataset = ShapesDataset(length=100)
    for i in range(100):
        boxes = [obj.box for obj in dataset.factors(i)]
        for a in boxes:
            assert 0 <= a[0] < a[2] <= 32 and 0 <= a[1] < a[3] <= 32
            assert 0.28 * 32 <= a[2] - a[0] <= 0.47 * 32
            for b in boxes:
                if a is not b:
                    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_shapes_rendered_colour_at_each_object_centre():
    dataset = ShapesDataset(length=30)
    for i in range(30):
        scene = dataset.scene(i)
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box
            pixel = (scene.image[:, (y0 + y1) // 2, (x0 + x1) // 2] + 1) / 2
            assert torch.allclose(pixel, torch.tensor(COLOURS[obj.colour]), atol=1e-6)


def test_shapes_sketch_lies_on_object_boundaries():
    dataset = ShapesDataset(length=30)
    for i in range(30):
        conditions = dataset.scene(i).conditions
        sketch = conditions["sketch"][0] > 0
        inside = conditions["segmentation"].sum(0) > 0
        assert sketch.any()
        assert not (sketch & ~inside).any()
        # Every sketch pixel has a 4-neighbour outside the objects (or lies on the image border).
        outside = ~torch.nn.functional.pad(inside, (1, 1, 1, 1), value=False)
        up, down, left, right = outside[:-2, 1:-1], outside[2:, 1:-1], outside[1:-1, :-2], outside[1:-1, 2:]
        has_outside_neighbour = up | down | left | right
        assert not (sketch & ~has_outside_neighbour).any()


def test_shapes_segmentation_and_layout_use_the_class_channel():
    dataset = ShapesDataset(length=30)
    for i in range(30):
        scene = dataset.scene(i)
        for obj in scene.objects:
            x0, y0, x1, y1 = obj.box
            channel = SHAPES.index(obj.shape)
            assert (scene.conditions["layout"][channel, y0:y1, x0:x1] == 1).all()
            centre = scene.conditions["segmentation"][:, (y0 + y1) // 2, (x0 + x1) // 2]
            assert torch.equal(centre, torch.eye(3)[channel])
        boxes_area = sum((o.box[2] - o.box[0]) * (o.box[3] - o.box[1]) for o in scene.objects)
        assert scene.conditions["layout"].sum() == boxes_area


def test_shapes_style_target_is_the_hatched_scene_with_the_same_colours():
    dataset = ShapesDataset(task="style", length=20)
    for i in range(20):
        target, condition, _ = dataset[i]
        scene = dataset.scene(i)
        assert torch.allclose(condition, (scene.image + 1) / 2, atol=1e-6)
        assert not torch.allclose(target, scene.image, atol=0.1)
        outline = scene.conditions["sketch"][0] > 0
        styled_outline_colours = ((target + 1) / 2)[:, outline].T
        allowed = torch.tensor([COLOURS[obj.colour] for obj in scene.objects])
        distances = torch.cdist(styled_outline_colours, allowed).min(dim=1).values
        assert distances.max() < 1e-5


def test_shapes_rejects_unknown_task_and_split():
    with pytest.raises(ValueError, match="its tasks are sketch, segmentation, layout, style"):
        ShapesDataset(task="depth")
    with pytest.raises(ValueError, match="split"):
        ShapesDataset(split="val")


# --- digits -------------------------------------------------------------------------------


def test_digits_train_split_is_one_set_whose_order_the_seed_draws():
    train, again, other = (DigitsDataset(split="train", seed=seed) for seed in (0, 0, 1))
    assert len(train) == 1437 and torch.equal(again.images, train.images)
    assert not torch.equal(other.images[:20], train.images[:20])
    assert sorted(map(bytes, (image.numpy() for image in other.images))) == sorted(
        map(bytes, (image.numpy() for image in train.images)))


def test_digits_items_and_captions():
    dataset = DigitsDataset(length=10, resolution=32)
    assert len(dataset) == 10 and dataset.image_channels == 1 and dataset.condition_channels == 1
    for i, (target, condition, caption) in enumerate(dataset):
        assert target.shape == (1, 32, 32) and condition.shape == (1, 32, 32)
        assert target.min() >= -1 and target.max() <= 1 and target.max() > 0.5  # bright ink
        assert condition.min() >= 0 and condition.max() == 1
        assert caption == f"a handwritten digit {dataset.label(i)}"
    assert dataset.captions()[3] == dataset[3][2]


def test_digits_length_too_large_names_the_available_count():
    with pytest.raises(ValueError, match="1437"):
        DigitsDataset(split="train", length=2000)


# --- folder -------------------------------------------------------------------------------


def _write_pairs(root: Path, count: int = 2, size: int = 20) -> None:
    (root / "source").mkdir(parents=True)
    (root / "target").mkdir()
    lines = []
    for i in range(count):
        Image.new("L", (size, size), 255 if i else 0).save(root / "source" / f"{i}.png")
        Image.new("RGB", (size, size), (255, 0, 0)).save(root / "target" / f"{i}.png")
        entry = {"source": f"source/{i}.png", "target": f"target/{i}.png", "prompt": f"pair {i}"}
        lines.append(json.dumps(entry))
    (root / "prompt.json").write_text("\n".join(lines) + "\n\n")  # trailing blank line is skipped


def test_folder_loads_resizes_and_scales(tmp_path):
    _write_pairs(tmp_path)
    dataset = FolderDataset(tmp_path, resolution=8)
    assert len(dataset) == 2 and dataset.condition_channels == 1
    assert dataset.captions() == ["pair 0", "pair 1"]
    target, condition, prompt = dataset[1]
    assert target.shape == (3, 8, 8) and condition.shape == (1, 8, 8) and prompt == "pair 1"
    assert torch.equal(target[:, 0, 0], torch.tensor([1.0, -1.0, -1.0]))
    assert torch.equal(condition, torch.ones(1, 8, 8))
    grey = FolderDataset(tmp_path, resolution=8, image_channels=1, condition_channels=3)
    assert grey[0][0].shape == (1, 8, 8) and grey[0][1].shape == (3, 8, 8)


def test_folder_missing_prompt_file(tmp_path):
    with pytest.raises(DatasetError, match="prompt.json not found"):
        FolderDataset(tmp_path, resolution=8)
    with pytest.raises(DatasetError, match="does not exist"):
        FolderDataset(tmp_path / "nowhere", resolution=8)


def test_folder_empty_prompt_file(tmp_path):
    (tmp_path / "prompt.json").write_text("\n\n")
    with pytest.raises(DatasetError, match="prompt.json has no entries"):
        FolderDataset(tmp_path, resolution=8)


@pytest.mark.parametrize(
    "bad_line, problem",
    [
        ("{not json", "not valid JSON"),
        ('["source", "target"]', "expected a JSON object"),
        ('{"source": "source/0.png", "target": "target/0.png"}', "missing key 'prompt'"),
        ('{"source": "source/0.png", "target": 3, "prompt": "x"}', "'target' must be a string"),
        (
            '{"source": "source/9.png", "target": "target/0.png", "prompt": "x"}',
            r"source file .*9\.png does not exist",
        ),
    ],
)
def test_folder_bad_line_names_the_line_and_problem(tmp_path, bad_line, problem):
    _write_pairs(tmp_path)
    prompt_file = tmp_path / "prompt.json"
    lines = prompt_file.read_text().splitlines()
    prompt_file.write_text("\n".join([lines[0], "", bad_line]) + "\n")  # the bad entry is on line 3
    with pytest.raises(DatasetError, match=f"prompt.json line 3: {problem}"):
        FolderDataset(tmp_path, resolution=8)


def test_folder_unreadable_image_names_the_file(tmp_path):
    _write_pairs(tmp_path)
    (tmp_path / "target" / "1.png").write_bytes(b"this is not a png")
    dataset = FolderDataset(tmp_path, resolution=8)
    dataset[0]  # the intact pair still loads
    with pytest.raises(DatasetError, match=r"cannot read image .*target/1\.png"):
        dataset[1]


# --- extractors ---------------------------------------------------------------------------


def _square_image(size: int = 32) -> torch.Tensor:
    image = -torch.ones(3, size, size)
    image[:, 8:24, 8:24] = 1.0
    return image


def test_sketch_of_a_square_traces_its_border_only():
    sketch = sketch_from_image(_square_image())
    assert sketch.shape == (1, 32, 32) and set(sketch.unique().tolist()) == {0.0, 1.0}
    edges = sketch[0] > 0
    assert not edges[11:21, 11:21].any()  # flat interior
    assert not edges[:5].any() and not edges[:, :5].any()  # flat background
    border = torch.zeros(32, 32, dtype=torch.bool)
    border[6:26, 6:26] = True
    border[10:22, 10:22] = False
    assert not (edges & ~border).any()
    assert edges[8:24, 6:10].any(dim=1).all()  # the left side is traced along its length


def test_sketch_handles_batches_and_rejects_other_shapes():
    batch = torch.stack([_square_image(), -torch.ones(3, 32, 32)])
    sketches = sketch_from_image(batch)
    assert sketches.shape == (2, 1, 32, 32)
    assert torch.equal(sketches[0], sketch_from_image(batch[0])) and sketches[1].sum() == 0
    with pytest.raises(ValueError, match="shape"):
        sketch_from_image(torch.zeros(32, 32))


def test_build_sketch_dataset_round_trips_through_folder_dataset(tmp_path):
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    pixels = np.zeros((40, 48, 3), dtype=np.uint8)
    pixels[10:30, 14:34] = (0, 200, 255)
    Image.fromarray(pixels).save(images_dir / "a.png")
    Image.fromarray(255 - pixels).save(images_dir / "b.jpg")
    (images_dir / "notes.txt").write_text("not an image")

    out_dir = build_sketch_dataset(
        images_dir, tmp_path / "out", caption=lambda path: f"image {path.stem}", resolution=32
    )
    dataset = FolderDataset(out_dir, resolution=32)
    assert len(dataset) == 2 and dataset.captions() == ["image a", "image b"]
    target, condition, _ = dataset[0]
    assert target.shape == (3, 32, 32) and condition.shape == (1, 32, 32)
    assert torch.equal(condition, sketch_from_image(target))
    with pytest.raises(DatasetError, match="already exists"):
        build_sketch_dataset(images_dir, out_dir)


def test_build_sketch_dataset_names_an_unreadable_image(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"broken\.png"):
        build_sketch_dataset(tmp_path, tmp_path / "out")


# --- make_dataset -------------------------------------------------------------------------


def test_make_dataset_builds_each_domain(tmp_path):
    _write_pairs(tmp_path / "pairs")
    assert isinstance(make_dataset("shapes", "layout", length=3), ShapesDataset)
    assert len(make_dataset("digits", split="test")) == (1797 - 1437) // 3
    folder = make_dataset(f"folder:{tmp_path / 'pairs'}", resolution=16)
    assert isinstance(folder, FolderDataset) and folder.resolution == 16


def test_make_dataset_errors_are_helpful(tmp_path):
    with pytest.raises(ValueError, match="domain 'digits' has no task 'layout'; its tasks are sketch"):
        make_dataset("digits", "layout")
    with pytest.raises(ValueError, match="1437"):
        make_dataset("digits", length=5000)
    with pytest.raises(ValueError, match="known domains"):
        make_dataset("faces")
    with pytest.raises(ValueError, match="needs a resolution"):
        make_dataset(f"folder:{tmp_path}")
    _write_pairs(tmp_path / "pairs")
    with pytest.raises(ValueError, match="2 pairs available"):
        make_dataset(f"folder:{tmp_path / 'pairs'}", length=3, resolution=8)


def test_extract_cli_writes_a_dataset_and_names_a_bad_folder(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (20, 20), (200, 30, 30)).save(images / "red.png")
    extract_main([str(images), str(tmp_path / "pairs"), "--caption", "a red card", "--resolution", "16"])
    dataset = FolderDataset(tmp_path / "pairs", resolution=16)
    assert len(dataset) == 1 and dataset[0][2] == "a red card"
    with pytest.raises(SystemExit):
        extract_main([str(tmp_path / "missing"), str(tmp_path / "out")])
    assert "missing" in capsys.readouterr().err
