using Peft.Onnx.Core;
using Peft.Onnx.Core.SafeTensors;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Tuners;
using static TorchSharp.torch;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Trainer.Training;

/// <summary>
/// What <see cref="OneBatchSteps"/> measured: the loss before each optimizer step (Losses[0] is the loss of
/// the untrained adapter) and the gradients of the first step by parameter name.
/// </summary>
public sealed record OneBatchResult(IReadOnlyList<float> Losses, IReadOnlyDictionary<string, TensorData> FirstStepGradients);

/// <summary>
/// N optimizer steps on one fixed batch with a constant learning rate, as PEFT's reference loop:
/// for each step, loss = model(**batch).loss; loss.backward(); optimizer.step(); optimizer.zero_grad().
/// The model is in training mode (dropout active) while it runs.
/// </summary>
public static class OneBatchSteps
{
    /// <summary>Trains the adapter of <paramref name="model"/> on <paramref name="batch"/> (labels required).</summary>
    public static OneBatchResult Run(PeftModel model, ForwardBatch batch, Optimizer optimizer, int steps, Action<int, float>? progress = null)
    {
        if (batch.Labels is null) throw new PeftOnnxException("training needs labels in the batch (a 'labels' tensor; -100 marks ignored positions)");
        foreach (var (_, p) in model.Tuner.TrainableParameters)
            if (!p.requires_grad) p.requires_grad_(true);

        using var ids = tensor(batch.InputIds, batch.Shape);
        using var mask = tensor(batch.AttentionMask, batch.Shape);
        using var labels = tensor(batch.Labels, batch.LabelShape!);
        var wasTraining = model.Base.Training;
        model.Base.Training = true;
        try
        {
            return Run(() => ForwardPass.Forward(model, ids, mask, labels).Loss
                ?? throw new PeftOnnxException("the model returned no loss for a batch with labels"), optimizer, steps, progress);
        }
        finally
        {
            model.Base.Training = wasTraining;
        }
    }

    /// <summary>The loop itself over any loss: <paramref name="loss"/> runs a forward pass and returns a scalar.</summary>
    public static OneBatchResult Run(Func<Tensor> loss, Optimizer optimizer, int steps, Action<int, float>? progress = null)
    {
        if (steps < 1) throw new PeftOnnxException($"steps must be >= 1 (got {steps})");
        var losses = new List<float>(steps);
        IReadOnlyDictionary<string, TensorData>? firstGrads = null;
        optimizer.ZeroGrad();
        for (int step = 0; step < steps; step++)
        {
            using (var scope = NewDisposeScope())
            {
                var value = loss();
                var scalar = value.to(float32).cpu().item<float>();
                if (!float.IsFinite(scalar)) throw new PeftOnnxException($"step {step + 1}: the loss is {scalar} (diverged or invalid inputs)");
                losses.Add(scalar);
                value.backward();
                if (step == 0) firstGrads = Gradients(optimizer);
                progress?.Invoke(step + 1, scalar);
            }
            optimizer.Step();
            optimizer.ZeroGrad();
        }
        return new OneBatchResult(losses, firstGrads!);
    }

    /// <summary>The current gradients as float32 CPU copies by parameter name (parameters without one are left out).</summary>
    public static IReadOnlyDictionary<string, TensorData> Gradients(Optimizer optimizer)
    {
        using var scope = NewDisposeScope();
        var result = new Dictionary<string, TensorData>(StringComparer.Ordinal);
        foreach (var (name, p) in optimizer.Parameters)
        {
            var g = p.grad;
            if (g is null) continue;
            var cpu = g.detach().to(float32).cpu().contiguous();
            result[name] = TensorData.FromFloat32(name, cpu.shape, cpu.data<float>().ToArray());
        }
        return result;
    }
}
