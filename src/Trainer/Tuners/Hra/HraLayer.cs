using Peft.Onnx.Core.Peft;
using Peft.Onnx.Trainer.Modeling;
using static TorchSharp.torch;

namespace Peft.Onnx.Trainer.Tuners.Hra;

/// <summary>
/// PEFT's hra.Linear: y = x @ (W @ H)^T + b with H = H_1 ... H_r built from hra_u [in, r] at each call
/// (<see cref="HraReflections"/> spells out the arithmetic); merged as W' = W @ H, unmerged with the reflections in
/// reverse order (each is its own inverse). A new adapter starts at H = I: with init_weights and an even r, PEFT draws
/// r/2 columns and repeats each once, so the pairs cancel.
/// </summary>
public sealed class HraLayer : InjectedLayer
{
    private readonly HraConfig _config;

    public HraLayer(TargetMatch target, HraConfig config, Device device) : base(target)
    {
        _config = config;
        long inF = target.Linear.InFeatures, r = target.Rank;
        using (no_grad())
        {
            if (config.InitWeights && r % 2 == 0)
            {
                using var half = zeros(inF, r / 2, device: device);
                nn.init.kaiming_uniform_(half, Math.Sqrt(5));
                U = half.repeat_interleave(2, dim: 1);
            }
            else
            {
                U = empty(inF, r, device: device);
                nn.init.kaiming_uniform_(U, Math.Sqrt(5));
            }
        }
        U.DetachFromDisposeScope().requires_grad_(true);
        Parameters = [new(HraConfig.Vectors, null, U)];
    }

    /// <summary>hra_u [in, r].</summary>
    public Tensor U { get; }

    public override IReadOnlyList<AdapterParameter> Parameters { get; }

    /// <summary>get_delta_weight: H [in, in], the reflections in order (or reversed, for unmerging).</summary>
    public Tensor Reflection(bool reverse = false)
    {
        using var scope = NewDisposeScope();
        long inF = U.shape[0];
        int r = (int)U.shape[1];
        var eye = TorchSharp.torch.eye(inF, dtype: U.dtype, device: U.device);
        Tensor h;
        if (_config.ApplyGs)
        {
            var columns = new List<Tensor> { U[TensorIndex.Colon, 0].div(U[TensorIndex.Colon, 0].norm()).view(-1, 1) };
            for (int i = 1; i < r; i++)
            {
                var ui = U[TensorIndex.Colon, i].view(-1, 1);
                for (int j = 0; j < i; j++) ui = ui.sub(columns[j].t().matmul(ui).mul(columns[j]));
                columns.Add(ui.div(ui.norm()).view(-1, 1));
            }
            var e = cat(columns, 1);
            h = eye.sub(e.matmul(e.t()).Times(2));
        }
        else
        {
            var unit = U.div(U.norm(0, true));
            h = eye;
            foreach (var i in reverse ? Enumerable.Range(0, r).Reverse() : Enumerable.Range(0, r))
            {
                var ui = unit[TensorIndex.Colon, i].view(-1, 1);
                h = h.sub(h.matmul(ui).matmul(ui.t()).Times(2));
            }
        }
        return h.MoveToOuterDisposeScope();
    }

    protected override Tensor AdaptedForward(LinearLayer layer, Tensor x)
    {
        using var scope = NewDisposeScope();
        var weight = layer.Weight.mm(Reflection().to(layer.Weight.dtype));
        return nn.functional.linear(x, weight, layer.Bias).MoveToOuterDisposeScope();
    }

    protected override void MergeInto(LinearLayer layer)
    {
        using var scope = NewDisposeScope();
        layer.Weight.copy_(layer.Weight.mm(Reflection().to(layer.Weight.dtype)));
    }

    protected override void UnmergeFrom(LinearLayer layer)
    {
        using var scope = NewDisposeScope();
        layer.Weight.copy_(layer.Weight.mm(Reflection(reverse: true).to(layer.Weight.dtype)));
    }
}
