"""PIAP-DF (Tang et al., "PIAP-DF: Pixel-Interested and Anti Person-Specific Facial Action Unit Detection Net with
Discrete Feedback Learning"): multi-stage Pixel-Interested learning (§3.1), Anti Person-Specific learning (§3.2)
and Discrete-Feedback semi-supervision (§3.3), ending in a light RGB AU encoder (the student's).

Stages, run in order inside one ``auspread train`` run (epoch ranges, ``options.stage_epochs``)::

    pi1     PI generator (DW-UNet) ← predefined PI maps from landmarks, L_PI (Eq. 1)
    pi2     generator → grayscale ⊙ σ(maps) → U-channel encoder, L_AU (Eq. 2); the generator keeps learning
    person  person encoder (the AU encoder's architecture) ← subject identities of the training split (CE)
    main    RGB AU encoder (+ decoder branch predicting the frozen generator's maps, + orthogonality to the frozen
            person encoder): L_PIAP = α L_AU + β L_PI + γ L_AP, normalised over the active terms (Eq. 3, 5, 6)
    df      teacher = copy of the main model, student = the main model; Discrete Feedback (Eq. 7–11)

``variant`` selects the stages of each Table-3 row (baseline, pi-2, pi-3, ap, df, piap, piap-df). Each stage has
its own optimiser; the engine restarts the LR schedule at each stage (``schedule_restarts``) and selects the best
checkpoint only among the final stage's epochs (``selectable_epoch``), so ``best.pt`` is always the variant's final
model. The engine's per-epoch ``last.pt`` makes the run resumable anywhere, including between stages.
See docs/methods/piap_df.md.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from auspread.errors import ConfigError, RunError
from auspread.losses.discrete_feedback import (discrete_feedback, feedback_enabled, gradient_feedback,
                                               loss_change_feedback)
from auspread.losses.orthogonality import orthogonality_loss
from auspread.losses.pixel_bce import pixel_bce
from auspread.losses.weighted_bce import weighted_bce_with_logits
from auspread.methods.base import (DataSpec, DatasetInfo, Method, MethodOptions, StepContext, StepOutput,
                                   register_method, scaled_backward, scaled_step)
from auspread.models.piap import (DWUNet, EncoderArch, LogitsOf, PersonNet, PI2Net, PIAPNet, PIMapSpec,
                                  ProbabilityModule, pi_maps, to_68_points)
from auspread.models.weights import MODEL_KEY, read_state

Variant = Literal["baseline", "pi-2", "pi-3", "ap", "df", "piap", "piap-df"]
Stage = Literal["pi1", "pi2", "person", "main", "df"]

#: stages of each Table-3 row (before removing "person" when a person checkpoint is supplied)
VARIANT_STAGES: dict[str, tuple[str, ...]] = {
    "baseline": ("main",),
    "pi-2": ("pi1", "pi2"),
    "pi-3": ("pi1", "pi2", "main"),
    "ap": ("person", "main"),
    "df": ("main", "df"),
    "piap": ("pi1", "pi2", "person", "main"),
    "piap-df": ("pi1", "pi2", "person", "main", "df"),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StageEpochs(_Strict):
    """Epochs of each stage (only the variant's stages count; their sum must equal ``optim.epochs``)."""

    pi1: int = Field(2, ge=1)
    pi2: int = Field(3, ge=1)
    person: int = Field(2, ge=1)
    main: int = Field(5, ge=1)
    df: int = Field(3, ge=1)


class LossWeights(_Strict):
    """α, β, γ of Eq. 6 (weights of L_AU, L_PI, L_AP); normalised to sum 1 over the variant's active terms, so
    PI-3 uses Eq. 3 with α = au/(au+pi) and AP uses Eq. 5 with β = au/(au+ap). The paper gives no values."""

    au: float = Field(0.6, gt=0)
    pi: float = Field(0.2, ge=0)
    ap: float = Field(0.2, ge=0)


class PIAPDFOptions(MethodOptions):
    name: Literal["piap-df"] = "piap-df"
    variant: Variant = "piap-df"
    encoder: EncoderArch = "efficientnet_b1"  # "small": the reduced CPU encoder (width below); "resnet18", "mobilenet_v2": not the paper's
    width: int = Field(16, ge=4)  # "small" encoder: stem channels (features = 16·width)
    generator_width: int = Field(16, ge=4)  # DW-UNet base channels
    generator_stride: Literal[1, 2] = 1  # 2: the DW-UNet runs at half resolution (reduced CPU configuration)
    decoder_width: int = Field(16, ge=4)  # stage-3 decoder's narrowest channels
    dropout: float = Field(0.2, ge=0, lt=1)  # before the AU head (EfficientNet-B1's classifier dropout)
    # EfficientNet's drop-path probability (last block; torchvision scales it linearly over the blocks). None keeps
    # torchvision's 0.2; 0 switches stochastic depth off (docs/methods/piap_df.md, issue 19). EfficientNet only.
    stochastic_depth: float | None = Field(None, ge=0, lt=1)
    stage_epochs: StageEpochs = StageEpochs()
    weights: LossWeights = LossWeights()
    class_weights: bool = False  # Eq. 2 is plain BCE; True uses the training split's per-AU weights
    person_weights: Path | None = None  # a person encoder instead of the "person" stage (see _load_person)
    init_weights: Path | None = None  # start the main AU encoder from another piap-df run's checkpoint (DISFA, §4.1.2)
    mu: float = Field(1.0, gt=0)  # unlabelled clips per labelled clip in the df stage
    feedback: Literal["gradient", "loss_change"] = "gradient"  # Eq. 10 dot product, or the labelled-loss change
    feedback_positive: float = 1.0
    feedback_negative: float = -0.1
    disable_prob: float = Field(0.05, ge=0, le=1)  # P(σ = 0)
    pseudo_threshold: float = Field(0.5, gt=0, lt=1)  # teacher probability above which an AU pseudo-label is 1
    seed: int = 0  # for the σ draws (one per step, the same on every process)


# --- the Discrete Feedback update (Eq. 7–11), generic over the networks -------------------------------------------
@dataclass
class DFStepResult:
    fb: float  # Eq. 10 raw feedback
    fb_discrete: float  # σ · h(fb)
    student_loss_u: float
    student_loss_l: float  # at ξ' (after the pseudo-label step)
    teacher_loss_u: float
    teacher_loss_l: float
    pseudo_positive: float  # fraction of pseudo-labels equal to 1


def _opt_params(opt: torch.optim.Optimizer) -> list[nn.Parameter]:
    return [p for g in opt.param_groups for p in g["params"]]


def discrete_feedback_step(
    teacher: Callable[[torch.Tensor], object], student: Callable[[torch.Tensor], object],
    loss: Callable[[object, torch.Tensor, str], torch.Tensor], pseudo: Callable[[object], torch.Tensor],
    x_u: torch.Tensor, x_l: torch.Tensor, y_l: torch.Tensor,
    teacher_opt: torch.optim.Optimizer, student_opt: torch.optim.Optimizer, enabled: bool,
    feedback: str = "gradient", positive: float = 1.0, negative: float = -0.1,
    sync: Callable[[list[nn.Parameter]], None] = lambda ps: None, scaler=None,
) -> DFStepResult:
    """One step of Discrete Feedback (§3.3). ``teacher(x)``/``student(x)`` give outputs, ``loss(out, y, split)``
    is L_PIAP against labels ``y`` (split "u" or "l" selects the frozen PI-map / person targets of that input),
    ``pseudo(out)`` the teacher's hard pseudo-labels G_p.

    1. Y_p = pseudo(f_θ(x_u)); student ξ' = ξ − η g_{ξ,u} with g_{ξ,u} = ∇_ξ L(f_ξ(x_u), Y_p)   (Eq. 7–8)
    2. fb = g_{ξ',l}ᵀ g_{ξ,u} (``feedback="gradient"``, Eq. 9–10) or L_l(ξ) − L_l(ξ') (``"loss_change"``)
    3. fb_D = σ h(fb); teacher θ' = θ − η (fb_D g_{θ,u} + g_{θ,l}), g_{θ,u} = ∇_θ L(f_θ(x_u), Y_p)   (Eq. 10–11)

    With a GradScaler (``scaler``, fp16 training) every loss is scaled before ``backward``, both optimisers step
    through the scaler (a step whose gradients overflowed is skipped) and the scale is updated once at the end;
    the feedback dot product uses unscaled gradients.
    """
    s_params, t_params = _opt_params(student_opt), _opt_params(teacher_opt)
    out_t_u = teacher(x_u)
    y_p = pseudo(out_t_u).detach()
    # student on pseudo-labels (Eq. 7-8)
    student_opt.zero_grad(set_to_none=True)
    ls_u = loss(student(x_u), y_p, "u")
    scaled_backward(ls_u, scaler)
    sync(s_params)
    if scaler is not None:
        scaler.unscale_(student_opt)
    g_u = [p.grad.detach().clone() if p.grad is not None else None for p in s_params]
    before = None
    if feedback == "loss_change":
        with torch.no_grad():
            before = loss(student(x_l), y_l, "l")
    scaled_step(student_opt, scaler)
    # feedback on labelled data (Eq. 9-10)
    student_opt.zero_grad(set_to_none=True)
    if feedback == "gradient":
        ls_l = loss(student(x_l), y_l, "l")
        scaled_backward(ls_l, scaler)
        sync(s_params)
        unscale = 1.0 / scaler.get_scale() if scaler is not None else 1.0
        fb = gradient_feedback([p.grad * unscale if p.grad is not None else None for p in s_params], g_u)
        student_opt.zero_grad(set_to_none=True)
    elif feedback == "loss_change":
        with torch.no_grad():
            ls_l = loss(student(x_l), y_l, "l")
        fb = loss_change_feedback(before, ls_l)
    else:
        raise ValueError(f"feedback must be 'gradient' or 'loss_change', got {feedback!r}")
    fb_d = discrete_feedback(fb, enabled, positive, negative)
    # teacher (Eq. 11)
    teacher_opt.zero_grad(set_to_none=True)
    lt_u = loss(out_t_u, y_p, "u")
    lt_l = loss(teacher(x_l), y_l, "l")
    scaled_backward(fb_d * lt_u + lt_l, scaler)
    sync(t_params)
    scaled_step(teacher_opt, scaler)
    teacher_opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.update()
    return DFStepResult(float(fb), fb_d, float(ls_u.detach()), float(ls_l.detach()), float(lt_u.detach()),
                        float(lt_l.detach()), float(y_p.float().mean()))


# --- the method -------------------------------------------------------------------------------------------------
@register_method
class PIAPDF(Method):
    name = "piap-df"
    Options = PIAPDFOptions
    manual_optimization = True

    def __init__(self, options: PIAPDFOptions, info: DatasetInfo, pretrained: str | None = None):
        super().__init__(options, info)
        o = options
        if o.stochastic_depth is not None and not o.encoder.startswith("efficientnet"):
            raise ConfigError(f"method.stochastic_depth={o.stochastic_depth} applies to EfficientNet encoders only; "
                              f"method.encoder={o.encoder!r} has no stochastic depth (remove the option)")
        stages = list(VARIANT_STAGES[o.variant])
        if o.person_weights is not None and "person" in stages:
            stages.remove("person")
        self.stages: tuple[str, ...] = tuple(stages)
        self.stage_start: dict[str, int] = {}
        start = 0
        for s in self.stages:
            self.stage_start[s] = start
            start += getattr(o.stage_epochs, s)
        self.total_epochs = start
        self.final_stage = self.stages[-1]
        self.use_pi = "pi1" in self.stages and self.final_stage != "pi2"  # PI learning reaches the main model
        self.use_ap = o.variant in ("ap", "piap", "piap-df")
        u = info.num_aus
        self.map_spec = PIMapSpec(info.aus) if "pi1" in self.stages else None
        if "pi1" in self.stages:
            self.generator = DWUNet(u, o.generator_width, input_stride=o.generator_stride)
            self.pi2 = PI2Net(self.generator, u, o.encoder, o.width, o.dropout, pretrained, o.stochastic_depth)
        if self.use_ap:
            self.person = PersonNet(info.num_subjects, o.encoder, o.width, pretrained, o.stochastic_depth)
            if o.person_weights is not None:
                self._load_person(o.person_weights)
        if self.final_stage != "pi2":
            self.main = PIAPNet(u, o.encoder, o.width, self.use_pi, o.dropout, pretrained, o.decoder_width,
                                o.stochastic_depth)
        if o.init_weights is not None:
            self._load_init(o.init_weights)
        if "df" in self.stages:
            self.teacher = copy.deepcopy(self.main)
            self.register_buffer("df_ready", torch.zeros((), dtype=torch.bool))
        self.register_class_weights(info, o.class_weights)
        self._roles: list[str] = []

    # --- stages ------------------------------------------------------------------------------------------------
    def stage_of(self, epoch: int) -> Stage:
        """The stage of 0-based ``epoch``."""
        for s in reversed(self.stages):
            if epoch >= self.stage_start[s]:
                return s
        return self.stages[0]

    def selectable_epoch(self, epoch: int) -> bool:
        """Engine hook: only epochs of the final stage (``epoch`` completed epochs, 1-based) may be "best"."""
        return epoch - 1 >= self.stage_start[self.final_stage]

    def schedule_restarts(self) -> list[int]:
        """Engine hook: the LR schedule (warm-up, cosine …) restarts at each later stage's first epoch."""
        return [self.stage_start[s] for s in self.stages[1:]]

    def _check_epochs(self, ctx: StepContext) -> None:
        if ctx.epochs != self.total_epochs:
            parts = " + ".join(f"{s} ({getattr(self.options.stage_epochs, s)})" for s in self.stages)
            raise ConfigError(f"piap-df variant {self.options.variant!r} runs the stages {parts} = {self.total_epochs} "
                              f"epochs, but optim.epochs={ctx.epochs}: set optim.epochs={self.total_epochs} or change "
                              "method.stage_epochs.<stage>")

    def _load_person(self, path: Path) -> None:
        """A person encoder from ``path``: an auspread checkpoint of a piap-df run (its ``person.encoder.*``) or a
        state dict of the encoder (``encoder.*`` keys, or a PersonNet's). The identity head is not needed."""
        if not Path(path).is_file():
            raise ConfigError(f"{path}: person encoder weights not found (method.person_weights)")
        state = read_state(path, "method.person_weights")
        if isinstance(state.get(MODEL_KEY), dict):  # a checkpoint: the person stage of a piap-df run
            state = {k[len("person."):]: v for k, v in state[MODEL_KEY].items() if k.startswith("person.")}
        enc = {k[len("encoder."):]: v for k, v in state.items() if k.startswith("encoder.")}
        if not enc:
            raise ConfigError(f"{path}: no person encoder weights in it (expected 'encoder.*' or 'person.encoder.*' keys)")
        try:
            self.person.encoder.load_state_dict(enc)
        except RuntimeError as e:
            raise ConfigError(f"{path}: person encoder weights do not match method.encoder="
                              f"{self.options.encoder!r} (width {self.options.width}): {str(e).splitlines()[0]}") from None

    def _load_init(self, path: Path) -> None:
        """§4.1.2 (DISFA): "fine-tune the PIAP model trained on BP4D ... reconnect [the 1280-d vector] to an
        8-dimension output": the main AU encoder of a piap-df checkpoint (``main.encoder.*``; best.pt of a run),
        with a fresh AU head for this dataset's AUs."""
        if self.final_stage == "pi2":
            raise ConfigError("method.init_weights initialises the RGB AU encoder, which variant 'pi-2' does not have")
        if not Path(path).is_file():
            raise ConfigError(f"{path}: checkpoint not found (method.init_weights)")
        model = read_state(path, "method.init_weights").get(MODEL_KEY) or {}
        enc = {k[len("main.encoder."):]: v for k, v in model.items() if k.startswith("main.encoder.")}
        if not enc:
            raise ConfigError(f"{path}: no 'main.encoder.*' weights (not a piap-df checkpoint with an RGB AU encoder)")
        try:
            self.main.encoder.load_state_dict(enc)
        except RuntimeError as e:
            raise ConfigError(f"{path}: AU encoder weights do not match method.encoder={self.options.encoder!r} "
                              f"(width {self.options.width}): {str(e).splitlines()[0]}") from None

    # --- data, optimisers --------------------------------------------------------------------------------------
    def data_spec(self) -> DataSpec:
        df = "df" in self.stages
        return DataSpec(clip_len=1, sampling="key_frames", landmarks="pi1" in self.stages,
                        unlabelled_ratio=self.options.mu if df else 0.0,
                        unlabelled_from_epoch=self.stage_start["df"] if df else 0)

    def configure_optimizers(self, make_optimizer):
        """One optimiser per role (generator, pi2 encoder, person, main, student, teacher); the student's is a
        fresh optimiser over the main model, so DF starts without the main stage's momentum."""
        groups: dict[str, list] = {}
        if "pi1" in self.stages:
            groups["generator"] = list(self.generator.parameters())
            groups["pi2"] = [p for n, p in self.pi2.named_parameters() if not n.startswith("generator.")]
        if "person" in self.stages:
            groups["person"] = list(self.person.parameters())
        if self.final_stage != "pi2":
            groups["main"] = list(self.main.parameters())
        if "df" in self.stages:
            groups["student"] = list(self.main.parameters())
            groups["teacher"] = list(self.teacher.parameters())
        self._roles = list(groups)
        return [make_optimizer([{"params": ps}]) for ps in groups.values()]

    def _opt(self, ctx: StepContext, role: str) -> torch.optim.Optimizer:
        return ctx.optimizers[self._roles.index(role)]

    # --- losses --------------------------------------------------------------------------------------------------
    def _au_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return weighted_bce_with_logits(logits, labels, self.class_weights)

    def _piap_loss(self, out, labels: torch.Tensor, maps_t: torch.Tensor | None, v_p: torch.Tensor | None,
                   logs: dict | None = None) -> torch.Tensor:
        """L_PIAP (Eq. 6) with α, β, γ normalised over the active terms (Eq. 3 for PI-3, Eq. 5 for AP)."""
        w = self.options.weights
        terms = [(w.au, self._au_loss(out.logits, labels), "l_au")]
        if self.use_pi:
            terms.append((w.pi, pixel_bce(out.maps, maps_t), "l_pi"))
        if self.use_ap:
            terms.append((w.ap, orthogonality_loss(out.features, v_p), "l_ap"))
        total_w = sum(t[0] for t in terms)
        if logs is not None:
            for _, v, k in terms:
                logs[k] = float(v.detach())
        return sum(t[0] / total_w * t[1] for t in terms)

    @torch.no_grad()
    def _targets(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Frozen targets of x: the PI generator's maps (σ, stage-3 ground truth) and the person features v_P."""
        maps = torch.sigmoid(self.generator(x)).float() if self.use_pi else None
        v_p = self.person.features(x).float() if self.use_ap else None
        return maps, v_p

    # --- training --------------------------------------------------------------------------------------------------
    def _update(self, loss: torch.Tensor, roles: list[str], ctx: StepContext) -> None:
        if not torch.isfinite(loss.detach()):
            raise RunError(f"piap-df: training loss is {float(loss.detach())} at step {ctx.step}; lower optim.lr")
        opts = [self._opt(ctx, r) for r in roles]
        for o in opts:
            o.zero_grad(set_to_none=True)
        ctx.backward(loss)
        ctx.sync_gradients([p for o in opts for p in _opt_params(o) if p.grad is not None])
        for o in opts:
            ctx.optimizer_step(o)
            o.zero_grad(set_to_none=True)
        ctx.update_scale()

    @staticmethod
    def _flat(batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        f, y = batch["frames"], batch["labels"]
        return f.reshape(-1, *f.shape[2:]), y.reshape(-1, y.shape[-1])

    def train_step(self, batch: dict, ctx: StepContext) -> StepOutput:
        self._check_epochs(ctx)
        stage = self.stage_of(ctx.epoch)
        x, y = self._flat(batch)
        amp = ctx.autocast() if ctx.autocast else contextlib.nullcontext()
        logs: dict[str, float] = {"stage": float(self.stages.index(stage))}
        if stage == "pi1":
            lm = batch["landmarks"]
            try:
                lm = to_68_points(lm.reshape(-1, *lm.shape[2:]))
            except ValueError as e:
                raise RunError(f"piap-df: {e}") from None
            target = pi_maps(lm, tuple(x.shape[-2:]), self.map_spec)
            with amp:
                loss = pixel_bce(self.generator(x), target)
            self._update(loss, ["generator"], ctx)
        elif stage == "pi2":
            with amp:
                loss = self._au_loss(self.pi2(x), y)
            self._update(loss, ["generator", "pi2"], ctx)
        elif stage == "person":
            with amp:
                loss = F.cross_entropy(self.person(x).float(), batch["subject"].reshape(-1))
            self._update(loss, ["person"], ctx)
        elif stage == "main":
            self._freeze_targets()
            maps_t, v_p = self._targets(x)
            with amp:
                loss = self._piap_loss(self.main(x), y, maps_t, v_p, logs)
            self._update(loss, ["main"], ctx)
        else:
            return self._df_step(batch, x, y, ctx, logs)
        logs["loss"] = float(loss.detach())
        return StepOutput(None, logs)

    def _freeze_targets(self) -> None:
        for m in (getattr(self, "generator", None), getattr(self, "person", None)):
            if m is not None:
                m.eval()

    def _df_step(self, batch: dict, x_l: torch.Tensor, y_l: torch.Tensor, ctx: StepContext, logs: dict) -> StepOutput:
        if "unlabelled" not in batch:
            raise RunError("piap-df: the df stage needs batch['unlabelled'] (DataSpec.unlabelled_ratio > 0)")
        if not bool(self.df_ready):  # §3.3: "f is copied to f_θ and f_ξ"
            self.teacher.load_state_dict(self.main.state_dict())
            self.df_ready.fill_(True)
        self._freeze_targets()
        x_u = self._flat(batch["unlabelled"])[0]
        aux = {"u": self._targets(x_u), "l": self._targets(x_l)}
        amp = ctx.autocast if ctx.autocast else contextlib.nullcontext
        thr = self.options.pseudo_threshold

        def run(net):
            def f(x):
                with amp():
                    return net(x)
            return f

        def loss(out, labels, split):
            return self._piap_loss(out, labels, *aux[split])

        def pseudo(out):  # multi-label hard pseudo-labels: each AU independently
            return (torch.sigmoid(out.logits.float()) > thr).float()

        g = torch.Generator().manual_seed(self.options.seed * 1_000_003 + ctx.step)
        o = self.options
        r = discrete_feedback_step(run(self.teacher), run(self.main), loss, pseudo, x_u, x_l, y_l,
                                   self._opt(ctx, "teacher"), self._opt(ctx, "student"),
                                   enabled=feedback_enabled(g, o.disable_prob), feedback=o.feedback,
                                   positive=o.feedback_positive, negative=o.feedback_negative, sync=ctx.sync_gradients,
                                   scaler=ctx.scaler)
        logs.update({"loss": r.student_loss_l, "fb": r.fb, "fb_discrete": r.fb_discrete, "student_loss_u": r.student_loss_u,
                     "teacher_loss_u": r.teacher_loss_u, "teacher_loss_l": r.teacher_loss_l,
                     "pseudo_positive": r.pseudo_positive})
        return StepOutput(None, logs)

    def on_epoch_end(self, epoch: int) -> dict[str, float]:
        return {"stage": float(self.stages.index(self.stage_of(epoch)))}

    # --- inference ----------------------------------------------------------------------------------------------
    def _inference_net(self) -> nn.Module:
        return self.pi2 if self.final_stage == "pi2" else LogitsOf(self.main)

    @torch.no_grad()
    def predict_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """The final model: the (student's) RGB AU encoder + head; for PI-2 the generator + 12-channel encoder."""
        return torch.sigmoid(self._inference_net()(frames).float())

    def export_module(self) -> nn.Module:
        """The light inference model ``(k,3,H,W) -> (k,U)`` probabilities (no landmarks, no teacher/decoder/person)."""
        return ProbabilityModule(copy.deepcopy(self._inference_net())).eval()
