"""The PyTorch references (`TorchReference`, the rows with impl `transformers`
and `timm`): transformers' VideoMAEForVideoClassification (and, for the
`pretrain` mode, VideoMAEForPreTraining) and timm's ViT per frame + frame mean
+ Linear, in eager PyTorch."""

from speed.configs import NUM_CLASSES, REFERENCE_IMPL
from speed.runner import Runner
from speed.timing import matmul_gflops


class TorchReference(Runner):
    """transformers' VideoMAE / timm's ViT-S in eager PyTorch."""

    impls = ("transformers", "timm")
    backend = "torch"
    optimizer_name = "torch.optim.AdamW"

    def __init__(self, impl, variant):
        import torch
        import torch._dynamo  # noqa: F401

        self.torch, self.impl, self.variant = torch, impl, variant
        self.dev = "cuda" if torch.cuda.is_available() else "cpu"

    @classmethod
    def from_job(cls, job):
        return cls(job["impl"], job["variant"])

    @classmethod
    def make_jobs(cls, model, args, common):
        """The model's reference in float32, bfloat16 autocast and cast to
        bfloat16 (inference only), unless --no-reference."""
        if not args.reference:
            return []
        return [dict(common, model=model, impl=REFERENCE_IMPL[model], backend="torch", variant="eager",
                     dtype=dtype, train=dtype != "bfloat16")
                for dtype in ("float32", "mixed_bfloat16", "bfloat16") if dtype in args.dtypes]

    @classmethod
    def matmul_kernels(cls, row):
        return "torch", ""

    def device(self):
        torch = self.torch
        return "cuda:" + torch.cuda.get_device_name(0) if self.dev == "cuda" else "cpu"

    def device_peak_mb(self):
        return self.torch.cuda.max_memory_allocated() / 2**20 if self.dev == "cuda" else None

    def framework_version(self):
        import importlib

        mod = importlib.import_module(self.impl)
        return f"{self.impl} {mod.__version__}, torch {self.torch.__version__}"

    def sync(self):
        if self.dev == "cuda":
            self.torch.cuda.synchronize()

    def matmul_peak(self, dtype, size):
        torch = self.torch
        x = torch.randn(size, size, device=self.dev).to(getattr(torch, dtype))

        def run():
            with torch.inference_mode():
                torch.mm(x, x)

        return matmul_gflops(run, self.sync, size)

    def build(self, model, cfg, dtype):
        torch = self.torch
        torch.manual_seed(0)
        if model == "videomae":
            from transformers import VideoMAEConfig, VideoMAEForVideoClassification

            config = VideoMAEConfig(
                image_size=cfg["image_size"], patch_size=cfg["patch_size"], num_frames=cfg["num_frames"],
                tubelet_size=cfg["tubelet_size"], hidden_size=cfg["hidden_size"],
                num_hidden_layers=cfg["num_layers"], num_attention_heads=cfg["num_heads"],
                intermediate_size=cfg["intermediate_size"], num_labels=NUM_CLASSES,
                decoder_hidden_size=cfg["decoder_hidden_size"],
                decoder_num_hidden_layers=cfg["decoder_num_hidden_layers"],
                decoder_num_attention_heads=cfg["decoder_num_attention_heads"],
                decoder_intermediate_size=cfg["decoder_intermediate_size"],
            )
            self.config = config
            net = VideoMAEForVideoClassification(config)
            self.forward = lambda x: net(pixel_values=x).logits
        else:
            import timm

            frames = cfg["num_frames"]

            class FrameMeanViT(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.vit = timm.models.vision_transformer.VisionTransformer(
                        img_size=cfg["image_size"], patch_size=cfg["patch_size"],
                        embed_dim=cfg["hidden_size"], depth=cfg["num_layers"], num_heads=cfg["num_heads"],
                        mlp_ratio=cfg["intermediate_size"] / cfg["hidden_size"], num_classes=0,
                    )
                    self.head = torch.nn.Linear(cfg["hidden_size"], NUM_CLASSES)

                def forward(self, x):  # (B, T, 3, H, W)
                    b = x.shape[0]
                    feats = self.vit(x.flatten(0, 1)).view(b, frames, -1)
                    return self.head(feats.mean(1))

            net = FrameMeanViT()
            self.forward = net
        net = net.to(self.dev)
        if dtype == "bfloat16":
            net = net.to(torch.bfloat16)
        self.net, self.dtype, self.model = net, dtype, model
        return sum(p.numel() for p in net.parameters())

    def compile(self, training):
        self.net.train(training)

    def _autocast(self):
        import contextlib

        torch = self.torch
        if self.dtype == "mixed_bfloat16":
            return torch.autocast(self.dev, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def videos(self, cfg, batch):
        torch = self.torch
        size = cfg["image_size"]
        g = torch.Generator().manual_seed(batch)
        x = torch.randn(batch, cfg["num_frames"], 3, size, size, generator=g).to(self.dev)
        return x.to(torch.bfloat16) if self.dtype == "bfloat16" else x

    def inference_fn(self, videos):
        torch = self.torch

        def run():
            with torch.inference_mode(), self._autocast():
                return self.forward(videos)

        return run

    def train_fn(self, videos, labels):
        torch = self.torch
        opt = torch.optim.AdamW(self.net.parameters(), lr=1e-4, weight_decay=0.05)
        target = torch.as_tensor(labels, device=self.dev)

        def run():
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                logits = self.forward(videos)
                loss = torch.nn.functional.cross_entropy(logits.float(), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            opt.step()
            return loss.item()

        return run

    def pretrain_fn(self, cfg, videos, bool_masked_pos):
        """transformers' VideoMAEForPreTraining (its config: the classifier's
        plus the decoder of `cfg`; its own loss, norm_pix_loss) on the given
        mask, with the training step's optimizer and clipping."""
        if self.model != "videomae":
            raise NotImplementedError(f"no pre-training step for {self.model!r}")
        torch = self.torch
        from transformers import VideoMAEForPreTraining

        torch.manual_seed(0)
        net = VideoMAEForPreTraining(self.config).to(self.dev).train()
        self.pretrainer = net
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.05)
        mask = torch.as_tensor(bool_masked_pos, device=self.dev)

        def run():
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                loss = net(pixel_values=videos, bool_masked_pos=mask).loss
            loss.float().backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            return loss.item()

        return run
