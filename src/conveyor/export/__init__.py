"""Export pipelines to orchestrators (Airflow, Argo, Kubeflow Pipelines) and models to
Kubernetes serving manifests. Exported files call ``conveyor task``; none embeds code."""
