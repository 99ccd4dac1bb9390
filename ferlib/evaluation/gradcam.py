"""Class activation maps: which parts of a face made the model choose a class ('why did it say that').

Grad-CAM (Selvaraju et al., 2017) weights each feature map of the last spatial layer by its *average* gradient. That
is exact only for a network that averages its last feature maps; ours flatten them into a dense layer, where the
same channel counts differently at each position, and the averaged weights can make the whole map negative (a blank
heatmap for a confident 'happy'). So the map here is HiResCAM's (Draelos & Carin, 2020): gradient times activation
at each position, summed over channels — the first-order share of the class score each position holds, faithful for
any head. The face and its mirror image are explained together and their maps averaged (the mirror's flipped back),
which steadies the map as test-time augmentation steadies the prediction. Negative evidence is dropped; a face with
no positive evidence anywhere is reported `flat` rather than drawn as a uniform tint.

The class score is the logit (the softmax's input) where the model ends in a softmax Dense layer, since the
probability's gradient vanishes as the model grows confident. Models take (N, 48, 48, 1) float pixels 0-255 and
rescale inside, so faces go in exactly as `preprocess_face` returns them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from ferlib.classes import EMOTIONS
from ferlib.data.preprocess import (
    IMAGE_SIZE,
    crop_with_margin,
    preprocess_face,
    to_bgr_uint8,
    to_grayscale,
    to_model_batch,
)
from ferlib.errors import FerError
from ferlib.live.overlay import draw_face
from ferlib.nets.ensemble import ensemble_members


def spatial_layer_types() -> tuple[type, ...]:
    """Layer types whose 4-D output can be the Grad-CAM target: convolutions and the activations after them."""
    import keras

    return (
        keras.layers.Conv2D,
        keras.layers.SeparableConv2D,
        keras.layers.DepthwiseConv2D,
        keras.layers.Activation,
        keras.layers.ReLU,
        keras.layers.ELU,
        keras.layers.LeakyReLU,
    )


def find_target_layer(model: Any) -> Any:
    """The last convolution or activation layer with a spatial (N, H, W, C) output: Grad-CAM's feature maps."""
    types = spatial_layer_types()
    for layer in reversed(model.layers):
        if isinstance(layer, types) and len(layer.output.shape) == 4:
            return layer
    raise FerError(
        f"Expected a model with a Conv2D or activation layer producing (N, H, W, C) feature maps; "
        f"received {getattr(model, 'name', type(model).__name__)!r}, which has none"
    )


def _ends_in_softmax_dense(layer: Any) -> bool:
    import keras

    activation = getattr(layer, "activation", None)
    return isinstance(layer, keras.layers.Dense) and getattr(activation, "__name__", "") == "softmax"


@dataclass
class Explanation:
    """Results for a batch: heatmaps (N, 48, 48) in 0-1, probabilities (N, 7), explained class indices, and which
    faces have a flat map (no position raised the class's score)."""

    heatmaps: np.ndarray
    probabilities: np.ndarray
    class_indices: np.ndarray
    flat: np.ndarray


class GradCam:
    """Grad-CAM for one Keras model; build it once per model (it wraps the model in a two-output model)."""

    def __init__(self, model: Any, class_names: tuple[str, ...] | None = None) -> None:
        import keras

        self.model = model
        outputs = int(model.output_shape[-1])
        self.class_names = class_names or (EMOTIONS if outputs == len(EMOTIONS) else tuple(map(str, range(outputs))))
        # An ensemble's map is its members' maps, each counting by the member's weight.
        self.members = [(GradCam(member, self.class_names), weight) for member, weight in ensemble_members(model)]
        if self.members:
            return
        self.layer = find_target_layer(model)
        self.output_layer = model.layers[-1]
        self.uses_logits = _ends_in_softmax_dense(self.output_layer)
        score_tensor = self.output_layer.input if self.uses_logits else model.outputs[0]
        self.feature_model = keras.Model(model.inputs, [self.layer.output, score_tensor])

    @property
    def layer_name(self) -> str:
        if self.members:
            return ", ".join(f"{member.model.name}/{member.layer_name}" for member, _ in self.members)
        return self.layer.name

    def _scores_and_probabilities(self, head: Any) -> tuple[Any, Any]:
        """Class scores (logits when available) and probabilities from the feature model's second output."""
        import tensorflow as tf

        if not self.uses_logits:
            return head, head
        logits = tf.matmul(head, tf.cast(self.output_layer.kernel, head.dtype))
        if self.output_layer.use_bias:
            logits = logits + tf.cast(self.output_layer.bias, head.dtype)
        return logits, tf.nn.softmax(logits)

    def explain(self, faces: np.ndarray, class_indices: np.ndarray | list[int] | int | None = None) -> Explanation:
        """Heatmaps of preprocessed 48x48 uint8 faces for the given classes (default: each face's predicted class)."""
        import tensorflow as tf

        batch = to_model_batch(faces)
        if batch.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
            raise FerError(f"Expected {IMAGE_SIZE}x{IMAGE_SIZE} faces from preprocess_face; received {batch.shape}")
        if self.members:
            return self._explain_ensemble(faces, batch, class_indices)
        count = len(batch)
        inputs = tf.constant(np.concatenate([batch, batch[:, :, ::-1, :]]))  # each face, then its mirror image
        with tf.GradientTape() as tape:
            tape.watch(inputs)  # records the whole forward pass, even for a model whose weights are frozen
            features, head = self.feature_model(inputs, training=False)
            scores, probabilities = self._scores_and_probabilities(head)
            chosen = self._class_indices(class_indices, np.asarray(probabilities)[:count], count)
            selected = tf.gather(scores, np.concatenate([chosen, chosen])[:, None], batch_dims=1)
        gradients = tape.gradient(selected, features)
        evidence = position_evidence(np.asarray(features), np.asarray(gradients))
        evidence = (evidence[:count] + evidence[count:, :, ::-1]) / 2  # the mirror's map, flipped back
        heatmaps, flat = normalise_evidence(evidence)
        return Explanation(
            heatmaps=np.stack([resize_heatmap(heatmap, IMAGE_SIZE) for heatmap in heatmaps]),
            probabilities=np.asarray(probabilities, dtype=np.float32)[:count],
            class_indices=chosen,
            flat=flat,
        )

    def _explain_ensemble(
        self, faces: np.ndarray, batch: np.ndarray, class_indices: np.ndarray | list[int] | int | None
    ) -> Explanation:
        """The members' maps for the ensemble's class (each scaled to 1, then weighted), and its probabilities."""
        probabilities = np.asarray(self.model(batch, training=False), dtype=np.float32)
        chosen = self._class_indices(class_indices, probabilities, len(batch))
        evidence = sum(weight * member.explain(faces, chosen).heatmaps for member, weight in self.members)
        heatmaps, flat = normalise_evidence(np.asarray(evidence, dtype=np.float32))
        return Explanation(heatmaps=heatmaps, probabilities=probabilities, class_indices=chosen, flat=flat)

    def heatmap(self, face: np.ndarray, class_index: int | None = None) -> np.ndarray:
        """One face's (48, 48) heatmap in 0-1 for `class_index` (default: the predicted class)."""
        return self.explain(face, class_index).heatmaps[0]

    def _class_indices(self, requested: np.ndarray | list[int] | int | None, probabilities: np.ndarray, count: int):
        if requested is None:
            return probabilities.argmax(axis=1).astype(np.int64)
        chosen = np.asarray(requested, dtype=np.int64).reshape(-1)
        if chosen.size == 1:
            chosen = np.repeat(chosen, count)
        if chosen.size != count:
            raise FerError(f"Expected one class index or one per face ({count}); received {chosen.size}")
        if chosen.min(initial=0) < 0 or chosen.max(initial=0) >= len(self.class_names):
            raise FerError(f"Expected class indices 0-{len(self.class_names) - 1}; received {requested!r}")
        return chosen


def position_evidence(features: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """HiResCAM's map per face (N, H, W): gradient times activation, summed over channels (signed)."""
    return np.einsum("nhwc,nhwc->nhw", features, gradients).astype(np.float32)


def normalise_evidence(evidence: np.ndarray, tolerance: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Positive evidence scaled to a maximum of 1 per face, and which faces have none (all-zero maps).

    A face counts as flat when its largest positive evidence is below `tolerance` times its largest absolute
    evidence (or is zero): numerically nothing raised the class's score.
    """
    positive = np.maximum(evidence, 0.0)
    peaks = positive.max(axis=(1, 2))
    scale = np.abs(evidence).max(axis=(1, 2))
    flat = (peaks <= 0) | (peaks < tolerance * np.maximum(scale, 1e-30))
    maps = np.divide(positive, peaks[:, None, None], out=np.zeros_like(positive), where=~flat[:, None, None])
    return maps.astype(np.float32), flat


def resize_heatmap(heatmap: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """A heatmap resized to `size` (side or (width, height)) with smooth interpolation, kept within 0-1."""
    width, height = (size, size) if isinstance(size, int) else size
    resized = cv2.resize(
        np.asarray(heatmap, dtype=np.float32), (int(width), int(height)), interpolation=cv2.INTER_CUBIC
    )
    return np.clip(resized, 0.0, 1.0)


def overlay_heatmap(
    image: np.ndarray, heatmap: np.ndarray, *, alpha: float = 0.45, colormap: int = cv2.COLORMAP_JET
) -> np.ndarray:
    """A BGR uint8 copy of `image` (gray, BGR or BGRA, any size) with the 0-1 heatmap blended on in a colormap."""
    if not 0.0 <= alpha <= 1.0:
        raise FerError(f"Expected an opacity between 0 and 1; received {alpha}")
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if heatmap.ndim != 2:
        raise FerError(f"Expected a 2-D heatmap; received shape {heatmap.shape}")
    base = to_bgr_uint8(image)
    resized = resize_heatmap(np.nan_to_num(heatmap), (base.shape[1], base.shape[0]))
    colored = cv2.applyColorMap(np.round(resized * 255).astype(np.uint8), colormap)
    return cv2.addWeighted(colored, alpha, np.ascontiguousarray(base), 1.0 - alpha, 0.0)


@dataclass
class FaceExplanation:
    """One face of a photo: its box, the photo's crop (8-bit BGR), the 48x48 model input, heatmap and probabilities."""

    box: tuple[int, int, int, int]
    crop: np.ndarray
    face: np.ndarray
    heatmap: np.ndarray
    probabilities: np.ndarray
    class_index: int
    flat: bool = False
    class_names: tuple[str, ...] = EMOTIONS

    @property
    def label(self) -> str:
        return self.class_names[self.class_index]

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.class_index])


def explain_photo(
    gradcam: GradCam, image: np.ndarray, detector: Any, *, margin: float = 0.0, class_index: int | None = None
) -> list[FaceExplanation]:
    """Detect faces in a photo, crop and preprocess them as the pipeline does, and explain each one.

    The detector gets the gray image, or the photo itself when it says it `needs_color`. Each face is explained
    for `class_index`, or for its own predicted class when that is None.
    """
    searched = image if getattr(detector, "needs_color", False) else to_grayscale(image)
    boxes = [box.as_tuple() for box in detector(searched)]
    if not boxes:
        return []
    crops = [crop_with_margin(image, box, margin) for box in boxes]
    faces = np.stack([preprocess_face(crop) for crop in crops])
    explanation = gradcam.explain(faces, class_index)
    return [
        FaceExplanation(
            box=box,
            crop=to_bgr_uint8(crop),
            face=face,
            heatmap=heatmap,
            probabilities=probabilities,
            class_index=int(chosen),
            flat=bool(flat),
            class_names=gradcam.class_names,
        )
        for box, crop, face, heatmap, probabilities, chosen, flat in zip(
            boxes,
            crops,
            faces,
            explanation.heatmaps,
            explanation.probabilities,
            explanation.class_indices,
            explanation.flat,
            strict=True,
        )
    ]


def explanation_overlay(image: np.ndarray, faces: list[FaceExplanation], *, alpha: float = 0.45) -> np.ndarray:
    """A BGR copy of the photo with each face's heatmap blended into its box (none where a map is flat), the box
    drawn in its class's colour and labelled."""
    canvas = to_bgr_uint8(image).copy()
    for face in faces:
        x, y, width, height = face.box
        region = canvas[y : y + height, x : x + width]
        if region.size and not face.flat:
            canvas[y : y + height, x : x + width] = overlay_heatmap(region, face.heatmap, alpha=alpha)
    for face in faces:
        draw_face(canvas, face.box, face.label, face.confidence)
    return canvas
