using System.Globalization;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Boft;

/// <summary>
/// PEFT's boft.Linear: y = x @ ((W @ R^T) * s)^T + b, the rotation R built from boft_R [factors, blocks, b, b] at each
/// call (<see cref="BoftRotation"/> spells out the arithmetic) and s = boft_s [out, 1]; the bias is not scaled. Merged
/// as W' = (W @ R^T) * s. A new adapter starts at R = I, s = 1 (boft_R = 0, boft_s = 1) unless init_weights is false
/// (then N(0, 0.1) and N(1, 0.1), as PEFT draws them). Block dropout changes training only; training with it is refused.
/// </summary>
public sealed class BoftLayer : InjectedLayer
{
    private readonly BoftConfig _config;
    private readonly Func<bool> _training;
    private readonly long[][] _permutations;

    public BoftLayer(TargetMatch target, BoftConfig config, Func<bool> training, Device device) : base(target)
    {
        _config = config;
        _training = training;
        Factors = config.BoftNButterflyFactor;
        Blocks = target.Rank;
        BlockSize = BoftConfig.BlockSizeOf(target);
        int inF = checked((int)target.Linear.InFeatures);
        _permutations = Enumerable.Range(0, Factors).Select(n => BoftButterfly.Permutation(inF, BlockSize, n, Factors).Select(i => (long)i).ToArray()).ToArray();
        using (no_grad())
        {
            R = empty(config.RotationTensor(target).Shape, device: device);
            S = empty(BoftConfig.ScaleTensor(target).Shape, device: device);
            if (config.InitWeights)
            {
                R.zero_();
                nn.init.ones_(S);
            }
            else
            {
                nn.init.normal_(R, 0.0, 0.1);
                nn.init.normal_(S, 1.0, 0.1);
            }
        }
        R.DetachFromDisposeScope().requires_grad_(true);
        S.DetachFromDisposeScope().requires_grad_(true);
        Parameters = [new(BoftConfig.Rotation, null, R), new(BoftConfig.Scale, null, S)];
    }

    /// <summary>boft_R [factors, blocks, b, b].</summary>
    public Tensor R { get; }

    /// <summary>boft_s [out, 1].</summary>
    public Tensor S { get; }

    public int Factors { get; }
    public int Blocks { get; }
    public int BlockSize { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    /// <summary>cayley_batch: (I - A)(I + A)^-1 of each block's skew part A = (R - R^T) / 2, [factors * blocks, b, b].</summary>
    public Tensor CayleyBlocks()
    {
        using var scope = NewDisposeScope();
        int b = BlockSize;
        var flat = R.view(-1, b, b);
        var skew = flat.sub(flat.transpose(1, 2)).Times(0.5);
        var eye = TorchSharp.torch.eye(b, dtype: R.dtype, device: R.device).expand(flat.shape[0], b, b);
        // X (I + A) = I - A, solved as (I + A)^T X^T = (I - A)^T, i.e. (I - A) X^T = I + A for a skew-symmetric A
        return linalg.solve(eye.sub(skew), eye.Plus(skew)).transpose(1, 2).MoveToOuterDisposeScope();
    }

    /// <summary>R = M_(N-1) ... M_0 [in, in], M_n = P_n blockdiag(blocks of factor n) P_n^T.</summary>
    public Tensor RotationMatrix()
    {
        using var scope = NewDisposeScope();
        var blocks = CayleyBlocks();
        Tensor? rotation = null;
        for (int n = 0; n < Factors; n++)
        {
            var m = block_diag(Enumerable.Range(n * Blocks, Blocks).Select(i => blocks[i]).ToArray());
            if (Factors > 1)
            {
                // (P A P^T)[i, j] = A[perm[i], perm[j]]: PEFT's products with the 0/1 matrices, exactly
                var perm = tensor(_permutations[n], device: R.device);
                m = m.index_select(0, perm).index_select(1, perm);
            }
            rotation = rotation is null ? m : m.matmul(rotation);
        }
        return rotation!.MoveToOuterDisposeScope();
    }

    /// <summary>(W @ R^T) * s, the weight PEFT's forward builds.</summary>
    private Tensor RotatedWeight(LinearLayer layer) =>
        layer.Weight.mm(RotationMatrix().to(layer.Weight.dtype).t()).mul(S.to(layer.Weight.dtype));

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        if (_training() && _config.BoftDropout > 0)
            throw new PeftOnnxException($"{_config.SourcePath}: boft_dropout = {_config.BoftDropout.ToString(CultureInfo.InvariantCulture)} is not supported for training BOFT adapters (expected 0.0)");
        using var scope = NewDisposeScope();
        return nn.functional.linear(x, RotatedWeight(layer), layer.Bias).MoveToOuterDisposeScope();
    }

    protected override void MergeInto(LinearLayer layer)
    {
        using var scope = NewDisposeScope();
        layer.Weight.copy_(RotatedWeight(layer));
    }

    protected override void UnmergeFrom(LinearLayer layer)
    {
        using var scope = NewDisposeScope();
        var inverse = linalg.inv(RotationMatrix().to(float64)).t();
        layer.Weight.copy_(layer.Weight.to(float64).div(S.to(float64)).matmul(inverse).to(layer.Weight.dtype));
    }
}
