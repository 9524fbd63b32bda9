using System.Globalization;
using System.Text.Json;
using Peft.Onnx.Core.Data;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Requests;

namespace Peft.Onnx.Cli.Commands;

/// <summary>
/// `generate`: text or ids in, ids and text out, from an exported folder with ONNX Runtime alone; with --data, a
/// label for every row of a CSV/JSONL file (see <see cref="GenerateDataMode"/>).
/// </summary>
public sealed class GenerateCommand : ICommand
{
    public string Name => "generate";
    public string Summary => "generate from an exported ONNX folder (greedy or sampling) with ONNX Runtime; --data labels a file";

    public IReadOnlyList<VerbOption> Options { get; } =
    [
        VerbOption.Value("onnx", "DIR", "the folder written by peft-onnx export"),
        VerbOption.Value("prompt", "TEXT", "the text to continue (tokenized with the folder's tokenizer)"),
        VerbOption.Value("input-ids", "1,2,3", "token ids to continue, instead of --prompt"),
        VerbOption.Value("max-new-tokens", "N", "new tokens at most (default: generation_config.json; 10 with --data)"),
        VerbOption.Flag("greedy", "pick the most likely token at every step"),
        VerbOption.Value("temperature", "T", "sample with this temperature"),
        VerbOption.Value("top-k", "K", "sample among the K most likely tokens"),
        VerbOption.Value("top-p", "P", "sample among the most likely tokens holding probability P"),
        VerbOption.Value("seed", "S", "the sampler's seed (same seed, same tokens)"),
        VerbOption.Value("repetition-penalty", "R", "divide the logits of tokens already in the sequence by R"),
        VerbOption.Value("data", "F.csv|F.jsonl", "label every row of this file instead (greedy, in batches)"),
        VerbOption.Value("text-column", "C", "--data: the column holding the text to label"),
        VerbOption.Value("template", "TEXT", $"--data: the prompt around {{text}} (default: train's, \"{ExampleBuilder.DefaultCausalTemplate}\" for causal models)"),
        VerbOption.Value("out", "F.csv", "--data: the CSV to write"),
        VerbOption.Value("label-column", "C", "--data: the output column holding the label", "label"),
        VerbOption.Value("id-column", "C", "--data: write only this column, the text and the label"),
        VerbOption.Value("batch-size", "N", "--data, --requests: rows generated together", "32"),
        VerbOption.Value("adapter-name", "NAME", "the adapter of a multi-adapter export to generate with (default: the base)"),
        VerbOption.Value("requests", "F.jsonl", "serve every request of this file ({\"id\", \"input_ids\" or \"prompt\", \"adapter\", \"max_new_tokens\"} a line), batched whatever their adapters"),
        VerbOption.Value("max-length", "N", "--data: the most prompt tokens (a longer prompt loses its start), as train --max-length"),
        SharedOptions.Device,
        SharedOptions.Tf32,
        SharedOptions.Json,
    ];

    public int Run(ArgReader args)
    {
        var dir = args.ExistingDir("onnx", "the folder written by peft-onnx export");
        var data = args.String("data");
        if (data != null) return GenerateDataMode.Run(args, dir, data);
        var requests = args.String("requests");
        var adapterName = args.String("adapter-name");
        var prompt = args.String("prompt");
        var inputIds = args.String("input-ids");
        var maxNewTokens = args.Int("max-new-tokens", min: 0);
        var greedy = args.Flag("greedy");
        var temperature = args.Double("temperature");
        var topK = args.Int("top-k", min: 0);
        var topP = args.Double("top-p");
        var seed = args.String("seed");
        var repetitionPenalty = args.Double("repetition-penalty");
        var device = DeviceArgument.Read(args);
        var json = args.Flag("json");
        var batchSize = requests != null ? args.Int("batch-size", min: 1)!.Value : 0;
        args.EnsureAllUsed();

        if (requests != null && (prompt != null || inputIds != null || adapterName != null))
            throw new PeftOnnxException("generate: --requests names each request's prompt and adapter itself (drop --prompt, --input-ids and --adapter-name)");
        if (requests == null && (prompt == null) == (inputIds == null)) throw new PeftOnnxException("generate: give exactly one of --prompt TEXT, --input-ids 1,2,3 or --data F.csv|F.jsonl");
        var options = GenerationOptions.FromSettings(maxNewTokens, greedy, temperature, topK, topP, seed, repetitionPenalty);
        if (requests != null) return RunRequests(dir, device, RequestFile.Read(requests), batchSize, options, json);
        var request = (prompt != null
            ? GenerationRequest.FromText(prompt, options)
            : GenerationRequest.FromIds(ParseIds(inputIds!), options)) with { Adapter = adapterName };

        using var model = OnnxModel.Load(dir, device);
        var result = model.Generate(request);
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["sequences"] = result.Sequences,
                ["text"] = result.Text,
                ["new_text"] = result.NewText,
                ["new_tokens"] = result.NewTokenCount,
                ["seconds"] = Math.Round(result.Elapsed.TotalSeconds, 6),
                ["tokens_per_second"] = Math.Round(result.TokensPerSecond, 3),
                ["device"] = result.Device,
            }));
        }
        else
        {
            Console.WriteLine(result.Text?[0] ?? string.Join(',', result.Sequences[0]));
            Console.Error.WriteLine($"{result.NewTokenCount} new tokens in {result.Elapsed.TotalSeconds:F3} s ({result.TokensPerSecond:F1} tokens/s, {result.Device})");
        }
        return 0;
    }

    /// <summary>`generate --requests`: every request served in batches; --json prints {"results": [{id, adapter, sequences, new_text}]}.</summary>
    private static int RunRequests(string dir, DeviceOptions device, IReadOnlyList<RequestLine> requests, int batchSize, GenerationOptions options, bool json)
    {
        using var model = OnnxModel.Load(dir, device);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var results = RequestBatches.Run(model, requests, batchSize, options);
        clock.Stop();
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["results"] = results.Select(r => new Dictionary<string, object?>
                {
                    ["id"] = r.Id,
                    ["adapter"] = r.Adapter,
                    ["sequences"] = new[] { r.Sequence },
                    ["new_text"] = r.NewText == null ? null : new[] { r.NewText },
                }).ToList(),
            }));
        }
        else
        {
            foreach (var r in results) Console.WriteLine($"{r.Id}\t{r.Adapter ?? "(base)"}\t{r.NewText ?? string.Join(',', r.NewTokens)}");
        }
        int tokens = results.Sum(r => r.NewTokens.Length);
        Console.Error.WriteLine($"{results.Count} requests, {tokens} new tokens in {clock.Elapsed.TotalSeconds:F3} s ({(clock.Elapsed.TotalSeconds > 0 ? tokens / clock.Elapsed.TotalSeconds : 0):F1} tokens/s, {model.DeviceName})");
        return 0;
    }

    private static int[] ParseIds(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new PeftOnnxException("generate: --input-ids is empty (expected e.g. 1,2,3)");
        return parts.Select(p => int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v)
            ? v : throw new PeftOnnxException($"generate: --input-ids: '{p}' is not an integer token id")).ToArray();
    }
}
