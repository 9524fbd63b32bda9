# peft-onnx serve in a container: builds the published CLI, then runs `serve` on an exported folder mounted at /model.
#   docker build -t peft-onnx .
#   docker run -p 8000:8000 -v $PWD/out/bloom:/model:ro peft-onnx --api-key KEY
# One container per GPU behind any HTTP load balancer (add --gpus and --device cuda on a CUDA host image).
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY . .
RUN dotnet publish src/Cli -c Release -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0
WORKDIR /app
COPY --from=build /app .
EXPOSE 8000
# 0.0.0.0 inside the container (the port mapping decides who reaches it); pass --api-key when it is exposed
ENTRYPOINT ["dotnet", "/app/peft-onnx.dll", "serve", "--onnx", "/model", "--host", "0.0.0.0", "--port", "8000", "--device", "cpu"]
