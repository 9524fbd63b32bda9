using System.Diagnostics;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Trainer.Finetune;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;
using static TorchSharp.torch;
using Peft.Onnx.Core.Data;

namespace Peft.Onnx.Bench;

/// <summary>Trainer step time of one method (AdamW step included) on a fixed random batch.</summary>
public sealed record TrainerFigures(string Method, int Batch, int SeqLength, int Steps, double StepSeconds, double SamplesPerSecond, long TrainableParameters);

public static class TrainerBench
{
    public static ForwardBatch RandomBatch(int batch, int seq, int vocab)
    {
        var ids = GenerationBench.Prompts(batch, seq, vocab).SelectMany(r => r.Select(v => (long)v)).ToArray();
        return new ForwardBatch(ids, Enumerable.Repeat(1L, ids.Length).ToArray(), [batch, seq], ids, [batch, seq]);
    }

    public static TrainerFigures Method(string baseDir, string method, int batch, int seq, int steps, bool warmUp = true)
    {
        var config = ModelConfig.Load(baseDir);
        var task = config.IsEncoderDecoder ? TaskKind.Seq2SeqLm : TaskKind.CausalLm;
        bool prompt = method is "prompt_tuning" or "p_tuning" or "prefix_tuning";
        var adapterConfig = FinetuneSetup.ConfigFor(method, new MethodOptions { NumVirtualTokens = prompt ? AdapterVariants.VirtualTokens : null }, task, baseDir, HfTokenizer.FromFolder(baseDir));
        using var model = PeftModel.Create(ModelLoader.Load(baseDir), adapterConfig, 0);
        var data = RandomBatch(batch, seq, config.Dimensions.VocabSize);
        foreach (var (_, p) in model.Tuner.TrainableParameters) if (!p.requires_grad) p.requires_grad_(true);
        using var optimizer = new AdamW(model.Tuner.TrainableParameters, new AdamWOptions(Lr: 1e-4));
        if (warmUp) OneBatchSteps.Run(model, data, optimizer, 1);
        var clock = Stopwatch.StartNew();
        OneBatchSteps.Run(model, data, optimizer, steps);
        var step = clock.Elapsed.TotalSeconds / steps;
        long trainable = model.Tuner.TrainableParameters.Sum(p => p.Parameter.numel());
        return new TrainerFigures(method, batch, seq, steps, step, batch / step, trainable);
    }

    /// <summary>The base model's own forward + backward (every weight trainable, no optimizer step): the reference figure.</summary>
    public static TrainerFigures BaseForwardBackward(string baseDir, int batch, int seq, int steps, bool warmUp = true)
    {
        using var model = ModelLoader.Load(baseDir);
        var data = RandomBatch(batch, seq, model.Config.Dimensions.VocabSize);
        var weights = model.Parameters.Distinct().Select(p => p.Tensor).ToList();
        foreach (var w in weights) w.requires_grad_(true);
        model.Training = true;
        void Step()
        {
            using var scope = NewDisposeScope();
            var ids = tensor(data.InputIds, data.Shape);
            var mask = tensor(data.AttentionMask, data.Shape);
            var output = model switch
            {
                CausalLm lm => lm.Forward(new CausalLmInput(ids, mask, Labels: ids)),
                Seq2SeqLm s2s => s2s.Forward(new Seq2SeqLmInput(ids, mask, Labels: ids)),
                _ => throw new InvalidOperationException(model.Architecture.ClassName),
            };
            output.Loss!.backward();
            foreach (var w in weights) { var g = w.grad; if (g is not null) { g.detach_(); g.zero_(); } }
        }
        if (warmUp) Step();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < steps; i++) Step();
        var s = clock.Elapsed.TotalSeconds / steps;
        return new TrainerFigures("base_forward_backward", batch, seq, steps, s, batch / s, weights.Sum(w => w.numel()));
    }
}
