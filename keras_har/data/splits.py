"""Dataset indexes: which videos, which labels. No decoding happens here.

Every index has `items` (a list of `(path, label)`), `class_names` (sorted,
deterministic), `len()`, `label_map()` and `save_label_map(path)`. Problems with
the index itself (a missing split file or class folder, a malformed line, an
unknown label, listed videos that are not on disk) are errors raised here,
before training starts, naming the file.
"""

import csv
import json
import pathlib
import re

VIDEO_EXTENSIONS = (".avi", ".mp4", ".mkv", ".webm", ".mov")


class DatasetIndexError(ValueError):
    """A split file, folder or list that does not describe a usable dataset."""


class VideoDataset:
    """A list of `(path, label)` with the class names; the base of every index."""

    def __init__(self, items, class_names, name="videos"):
        self.items = [(str(p), int(label)) for p, label in items]
        self.class_names = list(class_names)
        self.name = name
        if not self.items:
            raise DatasetIndexError(f"{name}: no videos.")

    def __len__(self):
        return len(self.items)

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}: {len(self)} videos, {len(self.class_names)} classes>"

    @property
    def paths(self):
        return [p for p, _ in self.items]

    @property
    def labels(self):
        return [label for _, label in self.items]

    def label_map(self):
        """`{class name: label index}`."""
        return {name: i for i, name in enumerate(self.class_names)}

    def save_label_map(self, path):
        """Write `label_map()` as JSON (read it back with `load_label_map`)."""
        path = pathlib.Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.label_map(), indent=2))
        return path


def read_lines(path):
    """The lines of a split or list file. Bytes that are not UTF-8 (names from
    archives made on other systems) are kept as Python keeps such file names
    (surrogate escapes), so the listed files are found on disk."""
    try:
        return pathlib.Path(path).read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as e:
        raise DatasetIndexError(f"{path}: cannot read ({e.strerror}).") from None


def load_label_map(path):
    """`{name: index}` written by `save_label_map` -> class names in index order."""
    mapping = json.loads(pathlib.Path(path).read_text())
    names = sorted(mapping, key=mapping.get)
    if [mapping[n] for n in names] != list(range(len(names))):
        raise DatasetIndexError(f"{path}: indices are not 0..{len(names) - 1}.")
    return names


def check_files_exist(items, source, missing="error"):
    """Raise naming the first missing videos (or drop them with missing='skip')."""
    absent = [str(p) for p, _ in items if not pathlib.Path(p).is_file()]
    if absent and missing == "error":
        shown = ", ".join(absent[:3])
        raise DatasetIndexError(
            f"{source}: {len(absent)} listed videos are not on disk (e.g. {shown}). "
            "Check --data-root, or pass missing='skip' to drop them."
        )
    keep = set(absent)
    return [(p, label) for p, label in items if str(p) not in keep]


class HMDB51(VideoDataset):
    """HMDB51 with its official splits.

    `split_dir` holds `testTrainMulti_7030_splits/<class>_test_split<k>.txt`; each
    line is `<video>.avi <id>` with 1 = train, 2 = test, 0 = unused. Videos live in
    `root/<class>/<video>.avi`. Classes are read from the split files (51 for the
    real dataset), sorted.
    """

    SUBSETS = {"train": 1, "test": 2}

    def __init__(self, root, split_dir, split=1, subset="train", missing="error"):
        root, split_dir = pathlib.Path(root), pathlib.Path(split_dir)
        if subset not in self.SUBSETS:
            raise ValueError(f"subset must be 'train' or 'test', got {subset!r}.")
        if not split_dir.is_dir():
            raise DatasetIndexError(f"HMDB51 split directory {split_dir} does not exist.")
        suffix = f"_test_split{split}.txt"
        files = sorted(split_dir.glob(f"*{suffix}"))
        if not files:
            raise DatasetIndexError(
                f"No HMDB51 split files *{suffix} in {split_dir} (expected e.g. "
                f"brush_hair{suffix} from testTrainMulti_7030_splits)."
            )
        class_names = sorted(f.name[: -len(suffix)] for f in files)
        wanted = self.SUBSETS[subset]
        items = []
        for label, name in enumerate(class_names):
            split_file = split_dir / f"{name}{suffix}"
            class_dir = root / name
            if not class_dir.is_dir():
                raise DatasetIndexError(f"Class folder {class_dir} (from {split_file.name}) does not exist.")
            for lineno, line in enumerate(read_lines(split_file), 1):
                if not line.strip():
                    continue
                parts = line.split()
                if (len(parts) != 2 or parts[1] not in ("0", "1", "2")
                        or pathlib.Path(parts[0]).suffix.lower() not in VIDEO_EXTENSIONS):
                    raise DatasetIndexError(
                        f"{split_file}:{lineno}: expected '<video>.avi <0|1|2>', got {line.strip()!r}."
                    )
                if int(parts[1]) == wanted:
                    items.append((class_dir / parts[0], label))
        items = check_files_exist(items, f"HMDB51 split {split} {subset}", missing)
        super().__init__(items, class_names, name=f"hmdb51 split{split} {subset}")


class UCF101(VideoDataset):
    """UCF101 with its official splits (`ucfTrainTestlist/`).

    `classInd.txt` lines are `<1-based index> <Class>`; `trainlist0k.txt` lines
    `<Class>/<video>.avi <index>`; `testlist0k.txt` lines `<Class>/<video>.avi`.
    """

    def __init__(self, root, split_dir, split=1, subset="train", missing="error"):
        root, split_dir = pathlib.Path(root), pathlib.Path(split_dir)
        if subset not in ("train", "test"):
            raise ValueError(f"subset must be 'train' or 'test', got {subset!r}.")
        class_file = split_dir / "classInd.txt"
        list_file = split_dir / f"{subset}list0{split}.txt"
        for f in (class_file, list_file):
            if not f.exists():
                raise DatasetIndexError(f"UCF101 split file {f} does not exist.")
        indexed = {}
        for lineno, line in enumerate(read_lines(class_file), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2 or not parts[0].isdigit():
                raise DatasetIndexError(f"{class_file}:{lineno}: expected '<index> <Class>', got {line.strip()!r}.")
            indexed[parts[1]] = int(parts[0])
        class_names = sorted(indexed)
        label_of = {name: i for i, name in enumerate(class_names)}
        items = []
        for lineno, line in enumerate(read_lines(list_file), 1):
            if not line.strip():
                continue
            parts = line.split()
            rel = parts[0]
            cls = rel.split("/")[0]
            expected = "<Class>/<video>.avi <index>" if subset == "train" else "<Class>/<video>.avi"
            if "/" not in rel or len(parts) != (2 if subset == "train" else 1) or (
                len(parts) == 2 and not parts[1].isdigit()
            ):
                raise DatasetIndexError(f"{list_file}:{lineno}: expected '{expected}', got {line.strip()!r}.")
            if cls not in label_of:
                raise DatasetIndexError(f"{list_file}:{lineno}: class {cls!r} is not in {class_file.name}.")
            if len(parts) == 2 and int(parts[1]) != indexed[cls]:
                raise DatasetIndexError(
                    f"{list_file}:{lineno}: label {parts[1]} does not match classInd's {indexed[cls]} for {cls}."
                )
            items.append((root / rel, label_of[cls]))
        items = check_files_exist(items, f"UCF101 split {split} {subset}", missing)
        super().__init__(items, class_names, name=f"ucf101 split{split} {subset}")


class VideoFolder(VideoDataset):
    """`root/<class>/*.{avi,mp4,mkv,webm}`, or `root/{train,val}/<class>/...` with `subset`."""

    def __init__(self, root, subset=None, class_names=None):
        root = pathlib.Path(root)
        base = root / subset if subset else root
        if not base.is_dir():
            hint = f" (with subset={subset!r} the layout is root/{subset}/<class>/...)" if subset else ""
            raise DatasetIndexError(f"Folder {base} does not exist{hint}.")
        found = sorted(d.name for d in base.iterdir() if d.is_dir())
        if not found:
            raise DatasetIndexError(f"{base} has no class folders.")
        names = list(class_names) if class_names is not None else found
        unknown = sorted(set(found) - set(names))
        if unknown:
            raise DatasetIndexError(f"{base}: class folders not in the label set: {', '.join(unknown[:5])}.")
        items = []
        for label, name in enumerate(names):
            folder = base / name
            if folder.is_dir():
                items += [(p, label) for p in sorted(folder.iterdir()) if p.suffix.lower() in VIDEO_EXTENSIONS]
        super().__init__(items, names, name=str(base))


class VideoCSV(VideoDataset):
    """A CSV list of `path,label` or `path,label,group` (a header row
    `path,label[,group]` is optional).

    The optional `group` column names each video's source (clips of one
    source are kept on one side of a validation split; see
    `keras_har.data.validation_split`). Labels are class names or integers; relative paths are taken from `root`
    (default: the CSV's folder). Pass the training set's `class_names` to a
    validation list so both use the same indices.
    """

    def __init__(self, path, root=None, class_names=None, missing="error"):
        path = pathlib.Path(path)
        if not path.exists():
            raise DatasetIndexError(f"CSV list {path} does not exist.")
        root = pathlib.Path(root) if root else path.parent
        rows = []
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as f:
            for lineno, row in enumerate(csv.reader(f), 1):
                if not row or not "".join(row).strip():
                    continue
                if lineno == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]:
                    continue
                if len(row) not in (2, 3):
                    raise DatasetIndexError(f"{path}:{lineno}: expected 'path,label[,group]', got {row!r}.")
                rows.append((lineno, row[0].strip(), row[1].strip(),
                             row[2].strip() if len(row) == 3 else None))
        if class_names is None:
            labels = {r[2] for r in rows}
            if not labels:
                raise DatasetIndexError(f"CSV list {path}: no videos.")
            if all(re.fullmatch(r"\d+", v) for v in labels):
                class_names = [str(i) for i in range(max(int(v) for v in labels) + 1)]
            else:
                class_names = sorted(labels)
        class_names = [str(c) for c in class_names]
        index = {name: i for i, name in enumerate(class_names)}
        items = []
        with_groups = [r[3] is not None for r in rows]
        if any(with_groups) and not all(with_groups):
            first = next(r[0] for r, g in zip(rows, with_groups) if not g)
            raise DatasetIndexError(f"{path}:{first}: a group column on some rows only; "
                                    "give every row a group, or none.")
        groups = {}
        for lineno, video, label, group in rows:
            if label in index:
                value = index[label]
            elif re.fullmatch(r"\d+", label) and int(label) < len(class_names):
                value = int(label)
            else:
                raise DatasetIndexError(f"{path}:{lineno}: unknown label {label!r}.")
            video_path = pathlib.Path(video)
            video_path = video_path if video_path.is_absolute() else root / video_path
            items.append((video_path, value))
            groups[str(video_path)] = group
        items = check_files_exist(items, str(path), missing)
        super().__init__(items, class_names, name=str(path))
        self.groups = [groups[p] for p in self.paths] if rows and all(with_groups) else None
