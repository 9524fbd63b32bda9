using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Oft;

/// <summary>
/// PEFT's oft.Linear (0.14+): the input is rotated before the frozen layer, y = (x @ R) @ W^T + b, R the block-diagonal
/// of r blocks of size b built from oft_R.weight [r, b(b-1)/2] at each call (<see cref="OftRotation"/> spells out the
/// arithmetic); merged as W' = W @ R^T. A new adapter starts at R = I (oft_R = 0) unless init_weights is false
/// (then N(0, 0.1), as PEFT draws it). Module dropout changes training only; training with it is refused.
/// </summary>
public sealed class OftLayer : InjectedLayer
{
    private readonly OftConfig _config;
    private readonly Func<bool> _training;
    private readonly float[] _skew;

    public OftLayer(TargetMatch target, OftConfig config, Func<bool> training, Device device) : base(target)
    {
        _config = config;
        _training = training;
        BlockSize = OftConfig.BlockSizeOf(target);
        Blocks = target.Rank;
        var shape = config.RotationTensor(target).Shape;
        using (no_grad())
        {
            Weight = empty(shape, device: device);
            if (config.InitWeights) Weight.zero_();
            else nn.init.normal_(Weight, 0.0, 0.1);
        }
        Weight.DetachFromDisposeScope().requires_grad_(true);
        _skew = SkewMap(BlockSize);
        Parameters = [new(OftConfig.Rotation, AdapterFormat.LinearWeight, Weight)];
    }

    /// <summary>oft_R.weight [r (1 with block_share), b(b-1)/2].</summary>
    public Tensor Weight { get; }

    public int BlockSize { get; }
    public int Blocks { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    /// <summary>
    /// The constant map from a triangle row to its skew-symmetric block (flattened): entry k of the row goes to (i, j)
    /// with +1 and to (j, i) with -1, (i, j) in torch.triu_indices(b, b, 1) order; a matmul keeps the gradient. Kept in managed memory: the layer owns no native tensor besides its weight.
    /// </summary>
    private static float[] SkewMap(int b)
    {
        var map = new float[OftRotation.TriangleLength(b) * b * b];
        long k = 0;
        for (int i = 0; i < b; i++)
            for (int j = i + 1; j < b; j++, k++)
            {
                map[k * b * b + i * b + j] = 1;
                map[k * b * b + j * b + i] = -1;
            }
        return map;
    }

    /// <summary>The rotation blocks [r, b, b].</summary>
    public Tensor RotationBlocks()
    {
        using var scope = NewDisposeScope();
        int b = BlockSize;
        var skew = tensor(_skew, [OftRotation.TriangleLength(b), (long)b * b], device: Weight.device);
        var q = Weight.matmul(skew).view(-1, b, b);
        if (_config.BlockShare) q = q.expand(Blocks, b, b);
        var eye = TorchSharp.torch.eye(b, dtype: Weight.dtype, device: Weight.device).expand(Blocks, b, b);
        Tensor r;
        if (_config.UseCayleyNeumann)
        {
            int terms = _config.NumCayleyNeumannTerms;
            r = eye.clone();
            var power = q;
            for (int k = 1; k <= terms - 1; k++)
            {
                if (k > 1) power = power.bmm(q);
                r = k == terms - 1 ? r.Plus(power) : r.Plus(power, 2.0);
            }
        }
        else r = eye.sub(q).bmm(linalg.inv(eye.Plus(q)));
        return r.MoveToOuterDisposeScope();
    }

    /// <summary>R = blockdiag(R_1 .. R_r) [in, in].</summary>
    public Tensor RotationMatrix()
    {
        using var scope = NewDisposeScope();
        var blocks = RotationBlocks();
        return block_diag(Enumerable.Range(0, Blocks).Select(i => blocks[i]).ToArray()).MoveToOuterDisposeScope();
    }

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        if (_training() && _config.ModuleDropout > 0)
            throw new PeftOnnxException($"{_config.SourcePath}: module_dropout = {_config.ModuleDropout.ToString(System.Globalization.CultureInfo.InvariantCulture)} is not supported for training OFT adapters (expected 0.0)");
        using var scope = NewDisposeScope();
        var blocks = RotationBlocks();
        var shape = x.shape;
        // x [..., r, b] times each block: rotated[..., i, c] = sum_k x[..., i, k] R_i[k, c]
        var grouped = x.reshape([.. shape[..^1], Blocks, BlockSize]);
        var rotated = einsum("...rk,rkc->...rc", grouped, blocks.to(x.dtype)).reshape(shape);
        return layer.BaseForward(rotated).MoveToOuterDisposeScope();
    }

    protected override void MergeInto(LinearLayer layer)
    {
        using var r = RotationMatrix();
        using var merged = layer.Weight.matmul(r.t().to(layer.Weight.dtype));
        layer.Weight.copy_(merged);
    }

    protected override void UnmergeFrom(LinearLayer layer)
    {
        using var scope = NewDisposeScope();
        var inverse = linalg.inv(RotationMatrix().to(float64)).t();
        layer.Weight.copy_(layer.Weight.to(float64).matmul(inverse).to(layer.Weight.dtype));
    }
}
