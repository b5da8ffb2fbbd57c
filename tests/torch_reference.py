"""PyTorch modules with the official TAViT structure and state-dict key names (docs/design.md §1).

Only torch users import this module (the checkpoint-import test, benchmarks/step.py): torch
is an optional extra.

They mirror `Unet_encoder`, `Unet_decoder` (skip 'add') and `cnnTransformer` of
github.com/TAViT2022/TAViT, so that state dicts saved from them have exactly the keys and
shapes of the official checkpoints. Two changes, neither touching parameters: the timestep
is an input (the official head draws a random one on every call), and sizes are arguments
so tests and benchmarks can run a tiny model.
"""

import math

import torch
from torch import nn
import torch.nn.functional as F


class Mish(nn.Module):

  def forward(self, x):
    return x * torch.tanh(F.softplus(x))


class SinusoidalPosEmb(nn.Module):

  def __init__(self, dim):
    super().__init__()
    self.dim = dim

  def forward(self, x):
    half = self.dim // 2
    freqs = torch.exp(torch.arange(half, device=x.device) * -(math.log(10000) / (half - 1)))
    angles = x.float()[:, None] * freqs[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=-1)


class Residual(nn.Module):

  def __init__(self, fn):
    super().__init__()
    self.fn = fn

  def forward(self, x):
    return self.fn(x) + x


class Rezero(nn.Module):

  def __init__(self, fn):
    super().__init__()
    self.fn = fn
    self.g = nn.Parameter(torch.zeros(1))

  def forward(self, x):
    return self.fn(x) * self.g


class Upsample(nn.Module):

  def __init__(self, dim):
    super().__init__()
    self.conv = nn.ConvTranspose2d(dim, dim, 4, 2, 1)

  def forward(self, x):
    return self.conv(x)


class Downsample(nn.Module):

  def __init__(self, dim):
    super().__init__()
    self.conv = nn.Conv2d(dim, dim, 3, 2, 1)

  def forward(self, x):
    return self.conv(x)


class Block(nn.Module):

  def __init__(self, dim, dim_out, groups=8):
    super().__init__()
    self.block = nn.Sequential(nn.Conv2d(dim, dim_out, 3, padding=1),
                               nn.GroupNorm(groups, dim_out), Mish())

  def forward(self, x):
    return self.block(x)


class ResnetBlock(nn.Module):

  def __init__(self, dim, dim_out, *, time_emb_dim, groups=8):
    super().__init__()
    self.mlp = nn.Sequential(Mish(), nn.Linear(time_emb_dim, dim_out))
    self.block1 = Block(dim, dim_out, groups)
    self.block2 = Block(dim_out, dim_out, groups)
    self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

  def forward(self, x, time_emb):
    h = self.block1(x)
    h = h + self.mlp(time_emb)[:, :, None, None]
    h = self.block2(h)
    return h + self.res_conv(x)


class LinearAttention(nn.Module):

  def __init__(self, dim, heads=4, dim_head=32):
    super().__init__()
    self.heads = heads
    hidden = heads * dim_head
    self.to_qkv = nn.Conv2d(dim, hidden * 3, 1, bias=False)
    self.to_out = nn.Conv2d(hidden, dim, 1)

  def forward(self, x):
    b, _, h, w = x.shape
    # 'b (qkv heads c) h w -> qkv b heads c (h w)'
    q, k, v = self.to_qkv(x).reshape(b, 3, self.heads, -1, h * w).unbind(1)
    k = k.softmax(dim=-1)
    context = torch.einsum("bhdn,bhen->bhde", k, v)
    out = torch.einsum("bhde,bhdn->bhen", context, q)
    return self.to_out(out.reshape(b, -1, h, w))


def _attention(dim, heads, dim_head):
  return Residual(Rezero(LinearAttention(dim, heads, dim_head)))


class Unet_encoder(nn.Module):  # pylint: disable=invalid-name
  """The client head; returns (features, time vector, skips)."""

  def __init__(self, input_nc=3, dim=128, dim_mults=(1, 2, 4), heads=4, dim_head=32, groups=8):
    super().__init__()
    dims = [input_nc, *(dim * m for m in dim_mults)]
    in_out = list(zip(dims[:-1], dims[1:]))
    resnet = lambda i, o: ResnetBlock(i, o, time_emb_dim=dim, groups=groups)
    self.time_pos_emb = SinusoidalPosEmb(dim)
    self.mlp = nn.Sequential(nn.Linear(dim, dim * 4), Mish(), nn.Linear(dim * 4, dim))
    self.downs = nn.ModuleList([])
    for index, (dim_in, dim_out) in enumerate(in_out):
      is_last = index >= len(in_out) - 1
      self.downs.append(nn.ModuleList([
          resnet(dim_in, dim_out), resnet(dim_out, dim_out), _attention(dim_out, heads, dim_head),
          Downsample(dim_out) if not is_last else nn.Identity()]))
    mid = dims[-1]
    self.mid_block1 = resnet(mid, mid)
    self.mid_attn = _attention(mid, heads, dim_head)
    self.mid_block2 = resnet(mid, mid)

  def forward(self, x, time):
    t = self.mlp(self.time_pos_emb(time))
    h = []
    for resnet, resnet2, attn, downsample in self.downs:
      x = attn(resnet2(resnet(x, t), t))
      h.append(x)
      x = downsample(x)
    x = self.mid_block2(self.mid_attn(self.mid_block1(x, t)), t)
    return x, t, h


class Unet_decoder(nn.Module):  # pylint: disable=invalid-name
  """The client tail with skip mode 'add'."""

  def __init__(self, input_nc=3, dim=128, out_dim=3, dim_mults=(1, 2, 4), heads=4, dim_head=32,
               groups=8):
    super().__init__()
    dims = [input_nc, *(dim * m for m in dim_mults)]
    in_out = list(zip(dims[:-1], dims[1:]))
    resnet = lambda i, o: ResnetBlock(i, o, time_emb_dim=dim, groups=groups)
    self.ups = nn.ModuleList([])
    for index, (dim_in, dim_out) in enumerate(reversed(in_out[1:])):
      is_last = index >= len(in_out) - 1  # Never true: every stage upsamples.
      self.ups.append(nn.ModuleList([
          resnet(dim_out, dim_in), resnet(dim_in, dim_in), _attention(dim_in, heads, dim_head),
          Upsample(dim_in) if not is_last else nn.Identity()]))
    self.final_conv = nn.Sequential(Block(dim, dim, groups), nn.Conv2d(dim, out_dim, 1), nn.Tanh())

  def forward(self, x, t, h):
    h = list(h)
    for resnet, resnet2, attn, upsample in self.ups:
      x = x + h.pop()
      x = upsample(attn(resnet2(resnet(x, t), t)))
    return self.final_conv(x)


class cnnTransformer(nn.Module):  # pylint: disable=invalid-name
  """The server body: tokens are the (h w) positions, sequence-first as torch expects."""

  def __init__(self, n_token=256, n_embed=512, n_head=8, n_hid=1024, n_layer=8, dropout=0.1):
    super().__init__()
    self.side = math.isqrt(n_token)
    self.pos_embedding = nn.Parameter(torch.randn(n_token, 1, n_embed))
    layer = nn.TransformerEncoderLayer(d_model=n_embed, nhead=n_head, dim_feedforward=n_hid,
                                       dropout=dropout)
    # enable_nested_tensor is not official: it only silences a warning (no parameters).
    self.transformer = nn.TransformerEncoder(layer, num_layers=n_layer, enable_nested_tensor=False)

  def forward(self, x):
    b, c, h, w = x.shape
    x = x.permute(2, 3, 0, 1).reshape(h * w, b, c)  # 'b c h w -> (h w) b c'
    x = self.transformer(x + self.pos_embedding)
    return x.reshape(self.side, -1, b, c).permute(2, 3, 0, 1)  # '(h w) b c -> b c h w', h=16


def paper_modules():
  """The official sizes: head, body, tail."""
  return Unet_encoder(), cnnTransformer(), Unet_decoder()


def count(module) -> int:
  return sum(p.numel() for p in module.parameters())
