using System.Diagnostics;
using Peft.Onnx.Core;
using Peft.Onnx.Core.Configs;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core.Peft;
using Peft.Onnx.Core.Tokenization;
using Peft.Onnx.Exporter.Onnx;
using Peft.Onnx.Exporter.Passes;
using Peft.Onnx.Runtime;
using Peft.Onnx.Trainer;
using Peft.Onnx.Trainer.Finetune;
using Peft.Onnx.Trainer.Generation;
using Peft.Onnx.Trainer.Inference;
using Peft.Onnx.Trainer.Modeling;
using Peft.Onnx.Trainer.Training;
using Peft.Onnx.Trainer.Tuners;
using static TorchSharp.torch;

namespace Peft.Onnx.Verification;

/// <summary>
/// Runs the adapted model (TorchSharp, unmerged) and the compiled ONNX folder on the same inputs: logits on real
/// tokens (decoder-only: attention_mask == 1; encoder-decoder: every decoder target position), then a greedy
/// generation per row on each side (TorchSharp greedy through the adapter vs the Runtime's greedy) at batch 1.
/// </summary>
public static class CompareRunner
{
    public static CompareReport Run(CompareRequest r, TextWriter log)
    {
        var config = ModelConfig.Load(r.BaseDir);
        bool seq2seq = config.IsEncoderDecoder;
        ForwardBatch batch;
        List<ComparePrompt> prompts;
        string source;
        if (r.InputsPath is { } inputsPath)
        {
            batch = ForwardBatch.Read(inputsPath);
            if (r.Limit is { } lim && lim < batch.Shape[0]) batch = Take(batch, lim);
            if (seq2seq && batch.Labels is null) throw new PeftOnnxException($"{inputsPath}: an encoder-decoder compare needs 'labels' [batch, target_len] (the decoder input is labels shifted right)");
            prompts = RealRows(batch).Select(ids => new ComparePrompt(ids, null)).ToList();
            source = inputsPath;
        }
        else
        {
            (batch, prompts) = FromData(r, config, seq2seq);
            source = r.DataPath!;
        }

        // A learned position table (GPT-2, OPT) has no row beyond its length: refused before weights are read; the
        // greedy runs below stop where the table ends.
        var positions = config.PositionTable;
        int virtualTokens = AdapterConfig.Load(r.AdapterDir).VirtualTokensBeforeInput;
        positions?.Check(batch.Shape[1], virtualTokens, source);

        TorchDevice.Resolve(r.Device, log.WriteLine);
        using var peft = PeftModelSource.FromAdapter(r.BaseDir, r.AdapterDir, out var loadReport, inferenceMode: true);
        Warnings.Unexpected(loadReport, log);
        batch.CheckVocabulary(peft.Base.Architecture.Config.Dimensions.VocabSize, source);
        batch.CheckLabels(peft.Base, source);

        // 1. logits, TorchSharp (unmerged adapter) vs ONNX Runtime.
        var clock = Stopwatch.StartNew();
        var torch = ForwardPass.Run(peft, batch);
        var torchSeconds = clock.Elapsed.TotalSeconds;
        float[] onnx;
        clock.Restart();
        using (var ort = LogitsForward.Open(r.OnnxDir))
        {
            if (ort.VocabSize != torch.LogitsShape[^1])
                throw new PeftOnnxException($"{r.OnnxDir}: the export's vocabulary is {ort.VocabSize}, the adapted model's {torch.LogitsShape[^1]}: not the same model");
            if (ort.IsEncoderDecoder != seq2seq) throw new PeftOnnxException($"{r.OnnxDir}: the export is {(ort.IsEncoderDecoder ? "encoder-decoder" : "decoder-only")}, the base model is not");
            int rows = (int)batch.Shape[0];
            if (seq2seq)
            {
                int start = config.DecoderStartId;
                onnx = ort.Seq2Seq(batch.InputIds, batch.AttentionMask, Seq2SeqForward.ShiftRight(batch.Labels!, rows, start, config.PadTokenId ?? 0), rows);
            }
            else
            {
                onnx = ort.Causal(batch.InputIds, batch.AttentionMask, rows);
            }
        }
        var onnxSeconds = clock.Elapsed.TotalSeconds;
        if (onnx.Length != torch.Logits.Length)
            throw new PeftOnnxException($"the export returned {onnx.Length} logits, the adapted model {torch.Logits.Length} ([{string.Join(", ", torch.LogitsShape)}])");
        var stats = LogitStats.Compute(torch.Logits, onnx, torch.LogitsShape, seq2seq ? null : batch.AttentionMask);
        var distribution = DistributionStats.Compute(torch.Logits, onnx, torch.LogitsShape, seq2seq ? null : batch.AttentionMask, batch.Labels, shifted: !seq2seq);
        bool quantized = QuantizedExport.Detect(r.OnnxDir);
        double tolerance = r.Tolerance ?? 1e-4 * Math.Max(1, stats.Std);

        // 2. greedy generations, one row at a time.
        using var model = OnnxModel.Load(r.OnnxDir, DeviceOptions.Parse(r.Device) with { Report = null });
        int[] stop = (model.GenerationDefaults.EosTokenId ?? config.EosTokenId ?? []).Distinct().ToArray();
        int pad = model.GenerationDefaults.PadTokenId ?? config.PadTokenId ?? (stop.Length > 0 ? stop[0] : 0);
        HfTokenizer? tokenizer = prompts.Any(p => p.Label != null) ? HfTokenizer.FromFolder(r.BaseDir) : null;
        int generated = 0, equal = 0, torchCorrect = 0, onnxCorrect = 0, labelled = 0;
        var torchSamples = new List<int[]>();
        var onnxSamples = new List<int[]>();
        foreach (var p in prompts)
        {
            int budget = positions?.NewTokensThatFit(p.Ids.Length, virtualTokens, r.MaxNewTokens) ?? r.MaxNewTokens;
            if (budget == 0) continue;
            generated++;
            var greedy = new GreedyOptions(budget, stop.Select(s => (long)s).ToArray(), pad);
            var runtimeOptions = new GenerationOptions { MaxNewTokens = budget, DoSample = false, StopTokenIds = stop, PadTokenId = pad };
            int[] torchNew;
            using (var scope = NewDisposeScope())
            {
                var ids = tensor(p.Ids, [1, p.Ids.Length]);
                var sequences = Evaluation.Generate(peft, ids, ones_like(ids), greedy);
                int skip = seq2seq ? 1 : p.Ids.Length;
                torchNew = sequences.cpu().contiguous().data<long>().ToArray().Skip(skip).Select(v => (int)v).ToArray();
            }
            var result = model.Generate(GenerationRequest.FromIds(p.Ids.Select(v => (int)v).ToArray(), runtimeOptions));
            var onnxNew = result.NewTokens[0];
            if (torchNew.SequenceEqual(onnxNew)) equal++;
            if (torchSamples.Count < 3) { torchSamples.Add(torchNew); onnxSamples.Add(onnxNew); }
            if (p.Label != null && tokenizer != null)
            {
                labelled++;
                if (tokenizer.Decode(torchNew, skipSpecialTokens: true).Trim() == p.Label.Trim()) torchCorrect++;
                if (tokenizer.Decode(onnxNew, skipSpecialTokens: true).Trim() == p.Label.Trim()) onnxCorrect++;
            }
        }
        return new CompareReport(peft.Config.PeftType, source, (int)batch.Shape[0], stats.Positions, stats.MaxAbs, stats.MeanAbs, stats.Std,
            tolerance, stats.Top1Agreement, generated, equal, r.MaxNewTokens,
            labelled > 0 ? (double)torchCorrect / labelled : null, labelled > 0 ? (double)onnxCorrect / labelled : null,
            torchSamples, onnxSamples, torchSeconds, onnxSeconds, stats.Differences)
        {
            Quantized = quantized,
            ToleranceApplies = !quantized || r.Tolerance != null,
            Distribution = distribution,
        };
    }

    /// <summary>Each row's real tokens (attention_mask == 1), the prompt of its greedy run.</summary>
    public static List<long[]> RealRows(ForwardBatch batch)
    {
        int rows = (int)batch.Shape[0], width = (int)batch.Shape[1];
        var result = new List<long[]>(rows);
        for (int b = 0; b < rows; b++)
        {
            var ids = new List<long>();
            for (int t = 0; t < width; t++) if (batch.AttentionMask[b * width + t] != 0) ids.Add(batch.InputIds[b * width + t]);
            if (ids.Count > 0) result.Add(ids.ToArray());
        }
        return result;
    }

    private static ForwardBatch Take(ForwardBatch b, int rows)
    {
        int w = (int)b.Shape[1];
        long[]? labels = null, labelShape = null;
        if (b.Labels != null) { int lw = (int)b.LabelShape![1]; labels = b.Labels[..(rows * lw)]; labelShape = [rows, lw]; }
        return new ForwardBatch(b.InputIds[..(rows * w)], b.AttentionMask[..(rows * w)], [rows, w], labels, labelShape);
    }

    private static (ForwardBatch, List<ComparePrompt>) FromData(CompareRequest r, ModelConfig config, bool seq2seq)
    {
        var task = seq2seq ? TaskKind.Seq2SeqLm : TaskKind.CausalLm;
        var template = r.Template != null ? PromptTemplate.Parse(r.Template) : seq2seq ? null : PromptTemplate.Parse("{text} Label : ");
        var table = DataTable.Read(r.DataPath!);
        var textColumn = r.TextColumn ?? "text";
        var labelColumn = r.LabelColumn ?? (table.Columns.Contains("text_label") ? "text_label" : "label");
        int limit = r.Limit ?? 16;
        table = table.Select(Enumerable.Range(0, Math.Min(limit, table.Count)));
        if (table.Count == 0) throw new PeftOnnxException($"{r.DataPath}: no rows");
        var tokenizer = HfTokenizer.FromFolder(r.BaseDir);
        var eos = tokenizer.EosTokenId ?? config.EosTokenId?.FirstOrDefault()
            ?? throw new PeftOnnxException($"{r.BaseDir}: the tokenizer and config.json name no eos token");
        var ids = new SpecialIds(eos, tokenizer.PadTokenId ?? config.PadTokenId ?? eos);
        var builder = new ExampleBuilder(tokenizer, task, ids, template);
        bool hasLabels = table.Columns.Contains(labelColumn);
        IReadOnlyList<Example> examples;
        if (hasLabels) examples = builder.BuildAll(table, textColumn, labelColumn);
        else
        {
            var text = table.ColumnIndex(textColumn);
            examples = table.Rows.Select(row => builder.Build(row[text], "")).ToList();
        }
        var padded = BatchCollator.Collate(examples, task, ids.Pad);
        var batch = new ForwardBatch(padded.InputIds, padded.AttentionMask, padded.Shape, padded.Labels, padded.LabelShape);
        var prompts = examples.Select(e => new ComparePrompt(e.PromptIds, hasLabels ? e.Label : null)).ToList();
        return (batch, prompts);
    }
}

/// <summary>Absolute differences of two logit arrays [B, T, V] over the rows the mask keeps (null: all).</summary>
public sealed record LogitStats(double MaxAbs, double MeanAbs, double Std, double Top1Agreement, long Positions, float[] Differences)
{
    public static LogitStats Compute(float[] reference, float[] other, long[] shape, long[]? mask)
    {
        int rows = (int)shape[0], length = (int)shape[1], vocab = (int)shape[2];
        double max = 0, sum = 0, refSum = 0, refSq = 0;
        long count = 0, positions = 0, agree = 0;
        var diffs = new List<float>();
        for (int b = 0; b < rows; b++)
            for (int t = 0; t < length; t++)
            {
                if (mask != null && mask[b * length + t] == 0) continue;
                positions++;
                int o = (b * length + t) * vocab;
                int argRef = 0, argOther = 0;
                for (int v = 0; v < vocab; v++)
                {
                    double a = reference[o + v], c = other[o + v];
                    double d = Math.Abs(a - c);
                    if (double.IsNaN(d)) d = double.PositiveInfinity;
                    max = Math.Max(max, d);
                    sum += d;
                    refSum += a;
                    refSq += a * a;
                    count++;
                    diffs.Add((float)d);
                    if (reference[o + v] > reference[o + argRef]) argRef = v;
                    if (other[o + v] > other[o + argOther]) argOther = v;
                }
                if (argRef == argOther) agree++;
            }
        if (count == 0) throw new PeftOnnxException("no real token to compare (the attention mask is all zeros)");
        double mean = refSum / count;
        double std = Math.Sqrt(Math.Max(0, refSq / count - mean * mean));
        return new LogitStats(max, sum / count, std, (double)agree / positions, positions, diffs.ToArray());
    }
}
