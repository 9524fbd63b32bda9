using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Peft.Onnx.Core;
using Peft.Onnx.Runtime;
using Peft.Onnx.Runtime.Batching;
using Peft.Onnx.Server.Api;
using Peft.Onnx.Runtime.Chat;
using Peft.Onnx.Server.Metrics;
using Peft.Onnx.Server.Scheduling;

namespace Peft.Onnx.Server;

/// <summary>
/// `peft-onnx serve`: an OpenAI-compatible HTTP endpoint on Kestrel over one exported folder. Loads the model,
/// listens, prints the address on stderr; SIGTERM or Ctrl+C stops accepting and lets the requests in flight finish.
/// </summary>
public static class ServeHost
{
    /// <summary>Serves until SIGTERM / Ctrl+C; returns the exit code (0 after a graceful stop).</summary>
    public static int Run(ServeOptions options, TextWriter log)
    {
        var server = StartAsync(options, log).GetAwaiter().GetResult();
        server.WaitForShutdownAsync().GetAwaiter().GetResult();
        log.WriteLine("serve: stopped accepting; requests in flight finished");
        server.ReleaseAsync().GetAwaiter().GetResult();
        return 0;
    }

    /// <summary>Loads the model and starts listening; throws <see cref="PeftOnnxException"/> for bad options or a folder that does not load.</summary>
    public static async Task<RunningServer> StartAsync(ServeOptions options, TextWriter log)
    {
        Validate(options);
        var address = ListenAddress(options.Host);
        if (!IPAddress.IsLoopback(address) && options.ApiKey == null)
            log.WriteLine($"serve: warning: listening on {options.Host} without --api-key: anyone who reaches this address can use the model");

        var metrics = new ServerMetrics(options.PrefixCacheMb > 0 ? new PromptCache(options.PrefixCacheMb * 1024L * 1024) : null);
        var model = OnnxModel.Load(options.OnnxDir, options.Device with { Report = log });
        var limits = new SchedulerLimits(options.MaxBatchSize, options.MaxQueue);
        IGenerationScheduler scheduler;
        if ((options.ContinuousBatching ? ContinuousBatch.WhyUnsupported(model) : "asked for") is { } why)
        {
            log.WriteLine($"serve: one generator per request ({why})");
            scheduler = new PerRequestScheduler(model, limits, metrics);
        }
        else scheduler = new BatchScheduler(model, limits, metrics);
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(model.Directory));
        var served = new ServedModel(name, model, scheduler, ChatTemplateSource.Load(model.Directory));
        var state = new ServerState(options, new Dictionary<string, ServedModel> { [name] = served }, metrics);

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, Args = [] });
        builder.Logging.ClearProviders();
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = options.DrainTimeout);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(address, options.Port);
            k.Limits.MaxRequestBodySize = options.MaxBodyBytes;
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        app.Use((context, next) => Guard(context, next, state));
        app.MapGet("/health", () => Results.Json(new { status = "ok" }));
        app.MapGet("/v1/models", () => Results.Content(Models(state).ToJsonString(), "application/json"));
        app.MapPost("/v1/completions", (HttpContext c) => CompletionsEndpoint.HandleAsync(c, state));
        app.MapPost("/v1/chat/completions", (HttpContext c) => ChatEndpoint.HandleAsync(c, state));
        app.MapGet("/metrics", () => Results.Text(metrics.Render(scheduler.QueueDepth, scheduler.Running, scheduler.Mode), "text/plain; version=0.0.4"));
        app.MapFallback((HttpContext c) => throw new ApiException(404, $"no endpoint {c.Request.Method} {c.Request.Path}", code: "not_found"));

        try
        {
            await app.StartAsync().ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            await served.DisposeAsync().ConfigureAwait(false);
            throw new PeftOnnxException($"serve: cannot listen on {options.Host}:{options.Port}: {ex.Message}", ex);
        }
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var uri = new Uri(bound.EndsWith('/') ? bound : bound + "/");
        log.WriteLine($"serve: listening on {uri.ToString().TrimEnd('/')} (model '{name}', {scheduler.Mode} scheduling, {model.DeviceName})");
        return new RunningServer(app, uri, [served]);
    }

    private static void Validate(ServeOptions o)
    {
        if (o.Port is < 0 or > 65535) throw new PeftOnnxException($"serve: --port {o.Port} must be in 0..65535 (0 picks a free port)");
        if (o.MaxBatchSize < 1) throw new PeftOnnxException($"serve: --max-batch-size {o.MaxBatchSize} must be at least 1");
        if (o.PrefixCacheMb < 0) throw new PeftOnnxException($"serve: --prefix-cache-mb {o.PrefixCacheMb} must be at least 0 (0 disables the prefix cache)");
        if (o.MaxQueue < 0) throw new PeftOnnxException($"serve: --max-queue {o.MaxQueue} must be at least 0");
        if (o.ApiKey is { Length: 0 }) throw new PeftOnnxException("serve: --api-key is empty (expected the key clients send as 'Authorization: Bearer KEY')");
    }

    private static IPAddress ListenAddress(string host)
    {
        if (host == "localhost") return IPAddress.Loopback;
        return IPAddress.TryParse(host, out var address) ? address
            : throw new PeftOnnxException($"serve: --host {host} is not an IP address (expected e.g. 127.0.0.1, 0.0.0.0 or ::1)");
    }

    private static JsonObject Models(ServerState state) => new()
    {
        ["object"] = "list",
        // an adapter names its base as "parent" (as vLLM lists LoRA adapters)
        ["data"] = new JsonArray(state.Names().Select(n => (JsonNode)new JsonObject
        {
            ["id"] = n.Name, ["object"] = "model", ["created"] = n.Served.Created, ["owned_by"] = "peft-onnx",
            ["root"] = n.Served.Name, ["parent"] = n.IsAdapter ? n.Served.Name : null,
        }).ToArray()),
    };

    /// <summary>
    /// Every request: the API key (except /health), then the endpoint; refusals and unexpected failures become
    /// OpenAI error objects (never a stack trace), and each request is counted by endpoint and status.
    /// </summary>
    private static async Task Guard(HttpContext context, Func<Task> next, ServerState state)
    {
        try
        {
            if (state.Options.ApiKey is { } key && context.Request.Path != "/health" && !Authorized(context.Request, key))
                throw new ApiException(401, "missing or wrong API key (expected 'Authorization: Bearer KEY')", code: "invalid_api_key");
            await next().ConfigureAwait(false);
        }
        catch (ApiException ex)
        {
            await ErrorResponses.WriteAsync(context, ex).ConfigureAwait(false);
        }
        catch (Microsoft.AspNetCore.Http.BadHttpRequestException ex)
        {
            await ErrorResponses.WriteAsync(context, new ApiException(ex.StatusCode, ex.StatusCode == 413 ? $"the body is larger than {state.Options.MaxBodyBytes} bytes" : "malformed request")).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // the client went away: its row was cancelled, nobody reads an answer
        }
        catch (Exception ex)
        {
            Console.Error.WriteLine($"serve: {context.Request.Method} {context.Request.Path} failed: {ex.GetType().Name}: {ex.Message}");
            await ErrorResponses.WriteAsync(context, new ApiException(500, "internal server error", "server_error")).ConfigureAwait(false);
        }
        finally
        {
            state.Metrics.CountRequest(Endpoint(context.Request.Path), context.Response.StatusCode);
        }
    }

    private static string Endpoint(PathString path) => path.Value switch
    {
        "/health" or "/v1/models" or "/v1/completions" or "/v1/chat/completions" or "/metrics" => path.Value,
        _ => "other",
    };

    private static bool Authorized(HttpRequest request, string key)
    {
        var header = request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase)) return false;
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()), Encoding.UTF8.GetBytes(key));
    }
}
