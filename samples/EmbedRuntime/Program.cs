// Loads a folder written by `peft-onnx export` and generates from it with ONNX Runtime alone.
//   dotnet run --project samples/EmbedRuntime -- OUT_DIR ["prompt"] [max_new_tokens] [cpu|cuda|auto]
using System.Diagnostics;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime;

if (args.Length == 0)
{
    Console.Error.WriteLine("usage: embed-runtime ONNX_DIR [prompt] [max_new_tokens] [cpu|cuda|auto]");
    return 2;
}
var dir = args[0];
var prompt = args.Length > 1 ? args[1] : "The company said";
var maxNewTokens = args.Length > 2 ? int.Parse(args[2]) : 32;
var device = DeviceOptions.Parse(args.Length > 3 ? args[3] : "auto");

try
{
    using var model = OnnxModel.Load(dir, device);

    // 1. Text in, text out (greedy: the same tokens as Hugging Face generate).
    var greedy = model.Generate(GenerationRequest.FromText(prompt, GenerationOptions.Greedy(maxNewTokens)));
    Console.WriteLine($"greedy:   {greedy.Text![0]}");
    Console.WriteLine($"          {greedy.NewTokenCount} tokens, {greedy.TokensPerSecond:F1} tokens/s on {greedy.Device} (first run)");
    var again = model.Generate(GenerationRequest.FromText(prompt, GenerationOptions.Greedy(maxNewTokens)));
    Console.WriteLine($"          {again.NewTokenCount} tokens, {again.TokensPerSecond:F1} tokens/s on {again.Device} (sessions warm)");

    // 2. Streaming with sampling; Ctrl+C cancels.
    using var cts = new CancellationTokenSource();
    Console.CancelKeyPress += (_, e) => { e.Cancel = true; cts.Cancel(); };
    var sampling = GenerationOptions.Sampling(seed: 42, temperature: 0.8, topK: 40, topP: 0.95, maxNewTokens: maxNewTokens);
    var ids = new List<int>();
    Console.Write($"sampled:  {prompt}");
    var printed = 0;
    await foreach (var token in model.StreamAsync(GenerationRequest.FromText(prompt, sampling), cts.Token))
    {
        ids.Add(token.TokenId);
        var text = model.Decode(ids);
        Console.Write(text[Math.Min(printed, text.Length)..]);
        printed = text.Length;
    }
    Console.WriteLine();

    // 3. Many requests at once on one loaded model.
    string[] prompts = ["Net sales", "Operating profit", "The board"];
    var watch = Stopwatch.StartNew();
    var results = await Task.WhenAll(prompts.Select(p => model.GenerateAsync(GenerationRequest.FromText(p, GenerationOptions.Greedy(maxNewTokens)))));
    foreach (var r in results) Console.WriteLine($"parallel: {r.Text![0]}");
    Console.WriteLine($"          {results.Sum(r => r.NewTokenCount)} tokens in {watch.Elapsed.TotalSeconds:F2} s");
    return 0;
}
catch (PeftOnnxException ex)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}
catch (OperationCanceledException)
{
    Console.Error.WriteLine("\ncancelled");
    return 130;
}
